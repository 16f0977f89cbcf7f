"""Tracker: stable ids through missed detections, smoothing, change and leave events."""

from __future__ import annotations

import numpy as np

from edge.config import TrackingConfig
from edge.preprocessing import EMOTIONS
from edge.vision.tracking import Tracker

HAPPY, SAD = EMOTIONS.index("happy"), EMOTIONS.index("sad")


def onehot(i: int, p: float = 0.9) -> np.ndarray:
    v = np.full(len(EMOTIONS), (1 - p) / (len(EMOTIONS) - 1), np.float32)
    v[i] = p
    return v


def make(**kw) -> Tracker:
    return Tracker(TrackingConfig(**kw), EMOTIONS, "test", "model-1")


#: A box followed without a new classification (see ``step``).
UNKNOWN = None


def step(t: Tracker, n: int, boxes: list, probs: list) -> list:
    """One frame; a row of ``probs`` that is :data:`UNKNOWN` was not classified."""
    classified = np.array([p is not UNKNOWN for p in probs], bool)
    rows = [p if p is not UNKNOWN else np.zeros(len(EMOTIONS)) for p in probs]
    arr = np.array(rows, np.float32).reshape(len(boxes), len(EMOTIONS))
    return t.update(n, 1000.0 + n, float(n), boxes, arr, classified=classified)


def test_appeared_after_min_hits_then_stable_id() -> None:
    t = make(min_hits=2)
    assert step(t, 0, [(100, 100, 80, 80)], [onehot(HAPPY)]) == []
    ev = step(t, 1, [(104, 102, 80, 80)], [onehot(HAPPY)])
    assert [(e.type, e.face, e.emotion) for e in ev] == [("appeared", 1, "happy")]
    for n in range(2, 10):
        step(t, n, [(100 + 3 * n, 100, 80, 80)], [onehot(HAPPY)])
    assert [tr.id for tr in t.tracks] == [1]


def test_id_survives_missed_detections_then_leaves() -> None:
    t = make(min_hits=1, max_missed=3)
    step(t, 0, [(100, 100, 80, 80)], [onehot(HAPPY)])
    for n in (1, 2, 3):
        assert step(t, n, [], []) == []
    ev = step(t, 4, [(102, 100, 80, 80)], [onehot(HAPPY)])
    assert ev == [] and t.tracks[0].id == 1  # same face, no new "appeared"
    for n in (5, 6, 7):
        step(t, n, [], [])
    ev = step(t, 8, [], [])
    assert [(e.type, e.face, e.frame) for e in ev] == [("left", 1, 8)]
    assert t.tracks == []


def test_two_faces_keep_their_ids_when_order_changes() -> None:
    t = make(min_hits=1)
    a, b = (50, 50, 80, 80), (400, 60, 90, 90)
    step(t, 0, [a, b], [onehot(HAPPY), onehot(SAD)])
    ev = step(t, 1, [b, a], [onehot(SAD), onehot(HAPPY)])
    assert ev == []
    by_id = {tr.id: tr for tr in t.tracks}
    assert by_id[1].box == a and by_id[2].box == b


def test_fast_move_without_overlap_keeps_the_id() -> None:
    t = make(min_hits=1)
    step(t, 0, [(100, 100, 100, 100)], [onehot(HAPPY)])
    step(t, 1, [(140, 100, 100, 100)], [onehot(HAPPY)])  # IoU 0.43
    step(t, 2, [(185, 100, 100, 100)], [onehot(HAPPY)])  # IoU 0.38
    ev = step(t, 3, [(250, 120, 100, 100)], [onehot(HAPPY)])  # IoU 0.16, centre 68 px away
    assert ev == [] and [tr.id for tr in t.tracks] == [1]


def test_smoothing_suppresses_a_one_frame_flip() -> None:
    t = make(min_hits=1, smoothing=0.3, change_frames=3)
    box = (100, 100, 80, 80)
    step(t, 0, [box], [onehot(HAPPY)])
    for n in range(1, 6):
        step(t, n, [box], [onehot(HAPPY)])
    ev = step(t, 6, [box], [onehot(SAD, 0.99)])  # one confident wrong frame
    ev += step(t, 7, [box], [onehot(HAPPY)])
    assert ev == []
    assert t.tracks[0].reported == HAPPY


def test_change_is_reported_once_it_holds() -> None:
    t = make(min_hits=1, smoothing=0.5, change_frames=3)
    box = (100, 100, 80, 80)
    step(t, 0, [box], [onehot(HAPPY)])
    changes = []
    for n in range(1, 10):
        changes += [(n, e.emotion) for e in step(t, n, [box], [onehot(SAD)])
                    if e.type == "changed"]
    # frame 1 ties (0.5 mix), sad wins from frame 2, holds 3 frames -> reported at frame 4
    assert changes == [(4, "sad")]


def test_summary_events_and_flush() -> None:
    t = make(min_hits=1, summary_every_s=2.0)
    box = (100, 100, 80, 80)
    kinds = [e.type for n in range(6) for e in step(t, n, [box], [onehot(HAPPY)])]
    assert kinds == ["appeared", "summary", "summary"]
    left = t.flush(6, 0.0, 6.0)
    assert [e.type for e in left] == ["left"] and t.tracks == []


def test_event_fields() -> None:
    t = make(min_hits=1)
    ev = step(t, 7, [(10, 20, 30, 40)], [onehot(HAPPY, 0.7)])[0]
    d = ev.to_dict()
    assert d["device"] == "test" and d["model"] == "model-1" and d["frame"] == 7
    assert d["box"] == [10, 20, 30, 40] and d["confidence"] == 0.7
    assert d["ts"].endswith("Z") and d["ts"].startswith("1970-01-01T00:16:47")


def test_event_ids_are_unique_across_restarts() -> None:
    # Two runs of the service see the same scene: same frames, same face numbers, same
    # event types; the spool may replay the first run's events after the second starts.
    runs = [make(min_hits=1), make(min_hits=1)]
    events = [e for t in runs for n in range(3)
              for e in step(t, n, [(10, 20, 30, 40)], [onehot(HAPPY)])]
    events += [e for t in runs for e in t.flush(3, 0.0, 3.0)]
    keys = {(e.device, e.frame, e.face, e.type) for e in events}
    assert len(keys) < len(events)  # the old key collides across the two runs
    ids = [e.to_dict()["id"] for e in events]
    assert len(set(ids)) == len(ids) and all(ids)
    assert runs[0].run != runs[1].run and ids[0].startswith(runs[0].run + "-")


def test_a_face_without_a_new_classification_carries_its_last_one_over() -> None:
    t, box = make(min_hits=1, change_frames=2, smoothing=0.5), (100, 100, 80, 80)
    unknown = UNKNOWN
    step(t, 0, [box], [onehot(HAPPY)])
    step(t, 1, [box], [onehot(SAD)])
    # Frames 2-3 are not classified: the latest classification (sad) counts again, so
    # the change holds and is reported as if sad had been seen in them.
    assert step(t, 2, [box], [unknown]) == []
    ev = step(t, 3, [box], [unknown])
    assert [(e.type, e.emotion) for e in ev] == [("changed", "sad")]
    assert t.tracks[0].probs.argmax() == EMOTIONS.index("sad")
    # A box without a classification never starts a face.
    step(t, 4, [box, (400, 100, 80, 80)], [unknown, unknown])
    assert [tr.id for tr in t.tracks] == [1]


def two_way(a: int, b: int, pa: float) -> np.ndarray:
    """Probabilities split between emotions ``a`` (``pa``) and ``b`` (the rest but 0.1)."""
    v = np.full(len(EMOTIONS), 0.1 / (len(EMOTIONS) - 2), np.float32)
    v[a], v[b] = pa, 0.9 - pa
    return v


def changes(t: Tracker, seq: list[np.ndarray], box=(100, 100, 80, 80)) -> list[tuple[int, str]]:
    """Feed one face's per-frame probabilities; its ``changed`` events as (frame, emotion)."""
    out = []
    for n, p in enumerate(seq):
        out += [(e.frame, e.emotion) for e in step(t, n, [box], [p]) if e.type == "changed"]
    return out


def near_tie(seed: int, frames: int = 600) -> list[np.ndarray]:
    """A face between neutral and sad: the winner swaps every 6-20 frames by a few points,
    as the shared clip's quiet stretches do."""
    rng = np.random.default_rng(seed)
    neutral, sad = EMOTIONS.index("neutral"), SAD
    seq, top = [], neutral
    while len(seq) < frames:
        other = sad if top == neutral else neutral
        for _ in range(int(rng.integers(6, 21))):
            seq.append(two_way(top, other, 0.45 + 0.04 * float(rng.random())))
        top = other
    return seq[:frames]


def test_a_near_tie_gives_no_changed_events_with_the_default_lead() -> None:
    for seed in range(5):
        seq = near_tie(seed)
        assert len(changes(make(min_hits=1, change_lead=0.0), seq)) >= 5  # without a lead: flicker
        assert changes(make(min_hits=1), seq) == []


def test_a_lasting_change_is_reported_at_most_a_few_frames_after_the_winner_alone() -> None:
    rng = np.random.default_rng(7)
    delays = []
    for _ in range(200):
        a, b = (int(i) for i in rng.choice(len(EMOTIONS), 2, replace=False))
        # The new emotion ends up leading by 0.2-0.8: a change a person would call one.
        before, after = 0.5 + 0.35 * float(rng.random()), 0.55 + 0.3 * float(rng.random())
        start = int(rng.integers(5, 40))
        seq = [two_way(a, b, before)] * start + [two_way(b, a, after)] * 60
        plain = changes(make(min_hits=1, change_lead=0.0), seq)
        led = changes(make(min_hits=1), seq)
        assert [e for _, e in led] == [e for _, e in plain] == [EMOTIONS[b]]
        assert 0 <= led[0][0] - plain[0][0] <= 5
        delays.append(led[0][0] - plain[0][0])
    assert np.median(delays) <= 1


def test_a_change_back_needs_the_lead_again() -> None:
    happy_sad = [two_way(HAPPY, SAD, 0.6)] * 3 + [two_way(SAD, HAPPY, 0.6)] * 4
    # Then happy on top again by 0.04 for ten frames: with the lead, not enough to undo it.
    seq = happy_sad + [two_way(HAPPY, SAD, 0.47)] * 10
    assert changes(make(min_hits=1, smoothing=1.0, change_frames=2), seq) == [(4, "sad")]
    assert changes(make(min_hits=1, smoothing=1.0, change_frames=2, change_lead=0.0),
                   seq) == [(4, "sad"), (8, "happy")]


def test_the_lead_is_validated() -> None:
    import pytest

    from edge.config import ConfigError, load
    for bad in (-0.1, 1.0, "x"):
        with pytest.raises(ConfigError, match=r"tracking\.change_lead"):
            load(None, {"tracking.change_lead": bad})
