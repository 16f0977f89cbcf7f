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


def step(t: Tracker, n: int, boxes: list, probs: list) -> list:
    arr = np.array(probs, np.float32).reshape(len(boxes), len(EMOTIONS))
    return t.update(n, 1000.0 + n, float(n), boxes, arr)


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
    unknown = np.full(len(EMOTIONS), np.nan, np.float32)
    step(t, 0, [box], [onehot(HAPPY)])
    step(t, 1, [box], [onehot(SAD)])
    # Frames 2-3 are not classified: the latest classification (sad) counts again, so
    # the change holds and is reported as if sad had been seen in them.
    assert step(t, 2, [box], [unknown]) == []
    ev = step(t, 3, [box], [unknown])
    assert [(e.type, e.emotion) for e in ev] == [("changed", "sad")]
    assert not np.isnan(t.tracks[0].probs).any()
    # A box without a classification never starts a face.
    step(t, 4, [box, (400, 100, 80, 80)], [unknown, unknown])
    assert [tr.id for tr in t.tracks] == [1]
