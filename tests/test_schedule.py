"""The detection schedule: which regions and sizes each frame searches (motion first,
sliced full searches, safety slices), how it is described, and how known faces are
followed between searches, on generated clips."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from edge.config import Config, ConfigError, DetectorConfig, load
from edge.frames import Frame
from edge.stats import Stats
from edge.vision.faces import FaceDetector
from edge.vision.plans import Tracked, describe_schedule
from edge.vision.schedule import DetectionSchedule
from edge.vision.slices import size_bands, slice_due
from tests.scenes import background, make_clip

MOTION = load(None, {})
FULL = load(None, {"motion.enabled": False, "detector.full_every": 1})


def test_size_bands_cover_every_size_in_slices_of_similar_cost() -> None:
    bands = size_bands(30, 240, 1.1, 4)
    assert len(bands) == 4
    assert bands[0][0] == 30 and bands[-1][1] == 240
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(bands):
        assert lo2 <= hi1 and lo1 < lo2 and hi1 < hi2  # each overlaps the next
    # Past twice the cascade's 24-pixel base, OpenCV scans every pixel, not every second.
    sizes = 30 * 1.1 ** np.arange(22)
    costs = [sum((3 if s > 48 else 1) / s ** 2 for s in sizes if lo <= s <= hi)
             for lo, hi in bands]
    assert max(costs) < 2 * min(costs)
    assert size_bands(50, 40, 1.1, 4) == []
    assert size_bands(30, 31, 1.1, 4) == [(30, 31)]


@pytest.mark.parametrize(("slices", "period"), [(4, 30), (12, 30), (30, 30), (1, 5), (7, 9)])
def test_search_slices_are_spread_evenly_over_their_period(slices: int, period: int) -> None:
    due = [slice_due(p, slices, period) for p in range(period)]
    frames = [p for p, k in enumerate(due) if k is not None]
    assert [due[p] for p in frames] == list(range(slices))  # each slice once, in order
    gaps = {b - a for a, b in itertools.pairwise([*frames, frames[0] + period])}
    assert max(gaps) - min(gaps) <= 1
    assert slice_due(0, 0, period) is None


# -- the schedule --------------------------------------------------------------------------

def _schedule(cfg: Config, stats: Stats) -> DetectionSchedule:
    return DetectionSchedule(cfg.detector.full_every, cfg.detector.region_margin, stats,
                             cfg.motion, cfg.detector.min_size)


def test_a_still_empty_room_runs_only_the_safety_slices() -> None:
    stats = Stats()
    schedule, detector = _schedule(MOTION, stats), FaceDetector(DetectorConfig())
    for i, gray in enumerate(make_clip(90, lambda i: None)):
        frame = Frame(i, 0.0, 0.0, gray)
        motion = schedule.observe(frame)
        assert schedule.find(detector, frame, i, motion).boxes == []
    c = stats.snapshot()["counters"]
    assert c["detect_full"] == 3  # the first frames, before there is a scene to compare
    # 4 slices of every 30 frames, evenly spread (frames 0, 7, 15, 22 of each 30), after
    # the first three
    assert c["detect_safety"] == 11
    assert "detect_motion" not in c and "detect_partial" not in c


def test_when_most_of_the_frame_moves_the_periodic_schedule_takes_over() -> None:
    stats = Stats()
    schedule, detector = _schedule(MOTION, stats), FaceDetector(DetectorConfig())
    bg = background()
    for i in range(12):
        frame = Frame(i, 0.0, 0.0, np.roll(bg, 9 * i, axis=1))  # a camera panning
        motion = schedule.observe(frame)
        schedule.find(detector, frame, i, motion)
    c = stats.snapshot()["counters"]
    assert c["detect_full"] == 12 and "detect_motion" not in c


def test_a_steady_still_face_keeps_its_box_when_asked_to_and_is_checked_again() -> None:
    cfg = load(None, {"motion.still_check_every": 5, "motion.safety_every": 0,
                      "motion.search_every": 1})
    stats = Stats()
    schedule, detector = _schedule(cfg, stats), FaceDetector(cfg.detector)
    clip = make_clip(20, lambda i: (100, 60, 1.0))
    box = detector.detect(clip[0])[0]
    for i, gray in enumerate(clip):
        frame = Frame(i, 0.0, 0.0, gray)
        motion = schedule.observe(frame)
        schedule.track([Tracked(box, steady=True)])
        assert schedule.find(detector, frame, i, motion).boxes
    c = stats.snapshot()["counters"]
    assert c["detect_still"] == 14  # 17 frames after the first three, less 3 checks
    assert c["detect_partial"] == 2 + 3  # frames 1-2 (periodic, before a scene) + checks
    # A face the tracker missed is searched for again, never carried on unseen.
    schedule.track([Tracked(box, steady=False)])
    frame = Frame(21, 0.0, 0.0, clip[0])
    motion = schedule.observe(frame)
    schedule.find(detector, frame, 21, motion)
    assert stats.snapshot()["counters"]["detect_partial"] == 6


def test_the_schedule_is_described_and_a_config_without_motion_keys_loads(tmp_path: Path) -> None:
    old = tmp_path / "detector-only.yaml"
    old.write_text("detector:\n  full_every: 3\n  region_margin: 0.4\n")
    cfg = load(old)
    assert cfg.detector.full_every == 3 and cfg.motion.enabled
    assert "every 3 frame(s)" in describe_schedule(3, cfg.motion)
    assert describe_schedule(3, dataclasses.replace(cfg.motion, enabled=False)).startswith(
        "periodic")
    with pytest.raises(ConfigError, match=r"motion\.safety_slices: must be at most"):
        load(None, {"motion.safety_every": 3, "motion.safety_slices": 4})
    with pytest.raises(ConfigError, match=r"motion\.width: must be in 32\.\.640"):
        load(None, {"motion.width": 8})


# -- following a face between searches ----------------------------------------------------

def test_a_followed_face_moves_with_the_picture_and_a_stranger_matches_poorly() -> None:
    from edge.vision.follow import cut, follow

    frames = make_clip(2, lambda i: (100 + 9 * i, 60 + 4 * i, 1.0))
    box = FaceDetector(DetectorConfig()).detect(frames[0])[0]
    template = cut(frames[0], box, 0)
    assert template is not None and template.order == 0
    (x, y, w, h), score = follow(frames[1], template, 0.25)
    assert abs(x - (box[0] + 9)) <= 2 and abs(y - (box[1] + 4)) <= 2 and (w, h) == box[2:]
    assert score > 0.9
    empty = make_clip(1, lambda i: None)[0]
    assert follow(empty, template, 0.25)[1] < 0.6
    assert cut(frames[0], (300, 200, 50, 50), 0) is None  # not inside the frame


def test_between_searches_known_faces_are_followed() -> None:
    cfg = load(None, {"motion.safety_every": 0})
    stats = Stats()
    schedule, detector = _schedule(cfg, stats), FaceDetector(cfg.detector)
    clip = make_clip(30, lambda i: (60 + 3 * i, 60, 1.0), (480, 640))  # drifting right
    boxes: list = []
    for i, gray in enumerate(clip):
        frame = Frame(i, 0.0, 0.0, gray)
        motion = schedule.observe(frame)
        # As the collector would publish it: confirmed after three frames in a row.
        schedule.track([Tracked(b, steady=i > 3) for b in boxes])
        boxes = schedule.find(detector, frame, i, motion).boxes
        assert len(boxes) == 1 and abs(boxes[0][0] - (60 + 3 * i) - 15) <= 8, (i, boxes)
    c = stats.snapshot()["counters"]
    assert c["detect_followed"] >= 14 and c["detect_partial"] <= 12
    assert "detect_fallback" not in c


def _reused_frames(classify_every: int) -> list[int]:
    """The frames in which a face drifting right (steady from frame 4) may keep its last
    classification, with ``classify_every``."""
    cfg = load(None, {"motion.safety_every": 0, "motion.classify_every": classify_every})
    schedule, detector = _schedule(cfg, Stats()), FaceDetector(cfg.detector)
    boxes: list = []
    reused = []
    for i, gray in enumerate(make_clip(30, lambda i: (60 + 3 * i, 60, 1.0), (480, 640))):
        frame = Frame(i, 0.0, 0.0, gray)
        motion = schedule.observe(frame)
        schedule.track([Tracked(b, steady=i > 3) for b in boxes])
        found = schedule.find(detector, frame, i, motion)
        boxes = found.boxes
        assert len(found.reuse) == len(boxes) == 1
        if found.reuse[0]:
            reused.append(i)
    return reused


def test_a_followed_face_keeps_its_classification_on_the_frames_classify_every_allows() -> None:
    reused = _reused_frames(2)
    # Only on odd frames (classify_every 2) that the cascade did not search (one in
    # search_every 3 is checked by it), once the face is steady.
    assert reused and all(i % 2 == 1 and i % 3 != 0 and i > 4 for i in reused)
    assert len(reused) >= 6
    assert _reused_frames(1) == []  # every face classified in every frame


def test_only_steady_faces_are_followed() -> None:
    cfg = load(None, {"motion.safety_every": 0})
    stats = Stats()
    schedule, detector = _schedule(cfg, stats), FaceDetector(cfg.detector)
    clip = make_clip(12, lambda i: (100, 60, 1.0), (480, 640))
    box = detector.detect(clip[0])[0]
    for i, gray in enumerate(clip):
        frame = Frame(i, 0.0, 0.0, gray)
        motion = schedule.observe(frame)
        schedule.track([Tracked(box, steady=False)])  # not yet confirmed, or just missed
        schedule.find(detector, frame, i, motion)
    c = stats.snapshot()["counters"]
    assert "detect_followed" not in c and c["detect_partial"] >= 9
