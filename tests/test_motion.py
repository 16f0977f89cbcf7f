"""Motion-first detection: the motion detector, the schedule's choices, and what it reports
compared with a full-frame search on every frame, on generated clips (the bundled
astronaut's face pasted on a background, still, entering, moving, re-lit)."""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.sources import Frame
from edge.config import Config, ConfigError, DetectorConfig, MotionConfig, load
from edge.events import EmotionEvent
from edge.preprocessing import EMOTIONS
from edge.runtime.pipeline import Pipeline
from edge.stats import Stats
from edge.vision.faces import FaceDetector
from edge.vision.motion import MotionDetector, search_regions
from edge.vision.plans import Tracked, describe_schedule
from edge.vision.schedule import DetectionSchedule
from edge.vision.slices import size_bands, slice_due
from edge.vision.tracking import Tracker

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "models/sample/astronaut.jpg"
SIZE = (240, 320)  # frame height, width: at detect_width, so no downscale blurs the test


def _face(side: int) -> np.ndarray:
    gray = cv2.imread(str(PHOTO), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(gray[34:194, 144:304], (side, side), interpolation=cv2.INTER_AREA)


def _background(size: tuple[int, int] = SIZE) -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(60, 160, size, dtype=np.uint8), (0, 0), 6)
    return cv2.normalize(smooth, None, 70, 150, cv2.NORM_MINMAX)


def make_clip(n: int, place: callable, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """``n`` frames of a still background of ``size`` (height, width) with a 100-pixel
    face where ``place(i)`` puts it: ``(x, y, gain)`` or ``None`` for no face."""
    side = 100
    face, bg = _face(side), _background(size)
    frames = []
    for i in range(n):
        f = bg.copy()
        at = place(i)
        if at is not None:
            x, y, gain = at
            f[y:y + side, x:x + side] = np.clip(face.astype(np.float32) * gain, 0, 255)
        frames.append(f)
    return frames


class ClipSource:
    """Frames from memory, as a file source delivers them (never dropping)."""

    live = False

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.n = frames, 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.n >= len(self.frames):
            return None
        f = Frame(self.n, time.time(), time.monotonic(), self.frames[self.n])
        self.n += 1
        return f

    def close(self) -> None:
        pass


class BrightnessClassifier:
    """A stand-in for the model whose answer depends only on the crop: its mean gray
    level picks the emotion. Re-lighting the face then changes the emotion, and a crop
    in another place changes it too, so the events show what the detector found."""

    labels = EMOTIONS

    def classify(self, faces: np.ndarray) -> np.ndarray:
        out = np.full((len(faces), len(EMOTIONS)), 0.02, np.float32)
        for i, face in enumerate(faces):
            out[i, min(6, int(face.mean() // 30))] = 0.88
        return out


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.events: list[EmotionEvent] = []

    def write(self, event: EmotionEvent) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def status(self, state: dict) -> None:
        pass

    def close(self) -> None:
        pass


def run(frames: list[np.ndarray], cfg: Config, workers: int = 2) -> tuple[list, dict]:
    """Events and counters of the real pipeline (real cascade) over ``frames``."""
    from edge.assemble import build_detector, build_schedule, pipeline_settings

    sink = ListSink()
    tracker = Tracker(cfg.tracking, EMOTIONS, "test", "m")
    pairs = [(build_detector(cfg), BrightnessClassifier()) for _ in range(workers)]
    stats = Stats()
    result = Pipeline(ClipSource(frames), pairs, tracker, [sink], pipeline_settings(cfg),
                      stats=stats, schedule=build_schedule(cfg, stats)).run()
    assert result.error is None
    return sink.events, result.stats["counters"]


MOTION = load(None, {})
FULL = load(None, {"motion.enabled": False, "detector.full_every": 1})


# -- the motion detector -------------------------------------------------------------------

def test_a_still_scene_has_no_motion_after_its_first_frames() -> None:
    md = MotionDetector(MotionConfig())
    bg = _background()
    first = [md.update(bg) for _ in range(3)]
    assert all(m.first and m.boxes == ((0, 0, 320, 240),) for m in first)
    for _ in range(20):
        m = md.update(bg)
        assert not m.first and m.boxes == () and m.share == 0.0


def test_a_moving_square_is_boxed_in_full_resolution_pixels() -> None:
    for shape in ((240, 320), (720, 1280)):
        md = MotionDetector(MotionConfig())
        bg = np.full(shape, 100, np.uint8)
        for _ in range(4):
            md.update(bg)
        f = bg.copy()
        s = shape[1] / 320
        x, y, w = int(150 * s), int(100 * s), int(40 * s)
        f[y:y + w, x:x + w] = 200
        m = md.update(f)
        assert len(m.boxes) == 1
        bx, by, bw, bh = m.boxes[0]
        assert bx <= x and by <= y and bx + bw >= x + w and by + bh >= y + w
        assert bw < 2 * w and bh < 2 * w  # boxed, not the whole frame
        assert 0 < m.share < 0.1


def test_the_motion_frame_can_come_from_a_smaller_copy() -> None:
    md = MotionDetector(MotionConfig())
    small = np.full((120, 160), 100, np.uint8)
    for _ in range(4):
        md.update(small, (480, 640))
    moved = small.copy()
    moved[40:60, 80:100] = 220
    (x, y, w, h), = md.update(moved, (480, 640)).boxes
    assert x <= 320 <= x + w and y <= 160 <= y + h  # in the 640x480 frame's pixels


def test_search_regions_pad_grow_clip_and_merge() -> None:
    regions = search_regions([(10, 10, 10, 10), (30, 10, 10, 10), (250, 200, 60, 30)],
                             (240, 320), pad=0.5, least=40)
    assert len(regions) == 2  # the two small boxes grew into one area
    (ax, ay, aw, ah), (bx, by, bw, bh) = sorted(regions)
    assert ax == 0 and ay == 0 and aw >= 40 and ah >= 40
    assert bx + bw <= 320 and by + bh <= 240 and bw >= 60


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
    bg = _background()
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


# -- what the pipeline reports -------------------------------------------------------------

@pytest.mark.parametrize("size", [(480, 640), SIZE])
def test_a_face_entering_an_empty_room_is_reported_within_15_frames(size: tuple) -> None:
    events, counters = run(make_clip(100, lambda i: (110, 70, 1.0) if i >= 40 else None,
                                     size), MOTION)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 1 and 40 <= appeared[0].frame <= 40 + 15
    # Still from then on: the same face until the clip ends, never "left" on the way.
    assert {e.face for e in events} == {appeared[0].face}
    assert [e.frame for e in events if e.type == "left"] == [99]
    if size == (480, 640):  # found where it moved; in the smaller frame the face moves
        # over too much of it, and the periodic schedule finds it
        assert counters.get("detect_motion", 0) >= 1


def test_a_face_that_appears_without_motion_is_found_by_the_safety_search() -> None:
    cfg = load(None, {"motion.threshold": 255, "motion.safety_every": 15})
    events, counters = run(make_clip(80, lambda i: (110, 70, 1.0) if i >= 20 else None), cfg)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 1 and appeared[0].frame <= 20 + 15 + 4 + cfg.tracking.min_hits
    assert counters["detect_safety"] > 0 and "detect_motion" not in counters


def _wandering(i: int) -> tuple[int, int, float] | None:
    """A face that enters, drifts, stops, is re-lit (so its emotion changes), and leaves."""
    if i < 10 or i >= 230:
        return None
    x = 30 + min(i - 10, 80) * 2 if i < 150 else 190 - min(i - 150, 40)
    gain = (0.75, 1.0, 1.3, 0.9)[(i // 35) % 4]
    return x, 60 + (i // 20) % 3 * 4, gain


@pytest.mark.parametrize(("workers", "classify_every"), [(1, 1), (2, 1), (2, 2)])
def test_motion_first_reports_what_a_full_search_on_every_frame_reports(
        workers: int, classify_every: int) -> None:
    frames = make_clip(240, _wandering)
    full, full_counts = run(frames, FULL, workers)
    motion, motion_counts = run(frames, load(None, {"motion.classify_every": classify_every}),
                                workers)
    assert motion_counts["frames_with_face"] >= full_counts["frames_with_face"] - 2
    assert {e.face for e in motion} == {e.face for e in full}
    assert len({e.face for e in full}) == 1
    seq = [(e.type, e.emotion) for e in full]
    assert len([s for s in seq if s[0] == "changed"]) >= 3  # the clip does change emotions
    assert [(e.type, e.emotion) for e in motion] == seq
    for a, b in zip(motion, full, strict=True):
        assert abs(a.frame - b.frame) <= 2
    # ... for a fraction of the cascade's work. Which faces a worker knows of when it
    # starts a frame (and so whether the face's motion is explained or sends the frame to
    # the periodic schedule's whole search) depends, with two workers, on whether the
    # other has finished the frame before: deterministic with one worker only.
    full_searches = motion_counts.get("detect_full", 0)
    assert full_searches <= (240 // 10 if workers == 1 else 240 // 4), full_searches
    assert full_counts["detect_full"] == 240


def test_the_schedule_is_described_and_old_configs_keep_loading(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
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
