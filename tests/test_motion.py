"""Motion-first detection: the motion detector, and what the pipeline reports with it
compared with a full-frame search on every frame, on generated clips (the bundled
astronaut's face pasted on a background, still, entering, moving, re-lit)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import MotionConfig, load
from edge.vision.motion import MotionDetector, search_regions
from tests.scenes import SIZE, background, make_clip, run

MOTION = load(None, {})
FULL = load(None, {"motion.enabled": False, "detector.full_every": 1})


# -- the motion detector -------------------------------------------------------------------

def test_a_still_scene_has_no_motion_after_its_first_frames() -> None:
    md = MotionDetector(MotionConfig())
    bg = background()
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
