"""A room full of people: many faces, small faces at 720p, on generated clips (the bundled
astronaut's face pasted in a grid, each with its own slight motion)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import load
from edge.vision.faces import FaceDetector, Pyramid
from tests.scenes import background, face_patch, run

HD = (720, 1280)


def crowd_clip(n: int, cols: int, rows: int, side: int = 110,
               size: tuple[int, int] = HD, face: np.ndarray | None = None,
               gains: bool = True) -> list[np.ndarray]:
    """``n`` frames of ``cols`` x ``rows`` faces of ``side`` pixels (pasted; the cascade's
    box is about 0.6 of the default cut-out), each nodding a pixel or two on its own
    phase, one in three mirrored, each a little brighter or darker unless ``gains`` is
    off. ``face``: another ``side`` x ``side`` image to paste."""
    bg = background(size)
    face = face_patch(side) if face is None else face
    mirrored = face[:, ::-1]
    ch, cw = size[0] // rows, size[1] // cols
    frames = []
    for i in range(n):
        f = bg.copy()
        for k in range(cols * rows):
            r, c = divmod(k, cols)
            dy = round(2 * np.sin((i + 7 * k) / 6))
            y, x = max(0, r * ch + (ch - side) // 2 + dy), c * cw + (cw - side) // 2
            gain = 0.85 + 0.05 * (k % 4) if gains else 1.0
            patch = mirrored if k % 3 == 1 else face
            f[y:y + side, x:x + side] = np.clip(patch * gain, 0, 255)
        frames.append(f)
    return frames


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crowd_is_found_and_tracked_with_one_id_per_person(workers: int) -> None:
    frames = crowd_clip(60, 4, 3)
    events, counters = run(frames, load(None, {}), workers)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 12
    assert len({e.face for e in events}) == 12
    # Found in (nearly) every frame once the scene is known.
    assert counters["faces_detected"] >= 0.95 * 12 * (60 - 10)


def test_a_face_of_min_size_entering_an_empty_720p_scene_is_reported_within_15_frames() -> None:
    cfg = load(None, {})
    side = 80  # the cascade's box is about 0.62 of the pasted face: about min_size (48)
    face, bg = face_patch(side), background(HD)
    frames = []
    for i in range(60):
        f = bg.copy()
        if i >= 20:
            x = 900 + 2 * (i - 20)  # walking in
            f[300:300 + side, x:x + side] = face
        frames.append(f)
    detector = FaceDetector(cfg.detector)
    box = detector.detect(frames[30])[0]
    assert box[2] <= 1.15 * cfg.detector.min_size
    events, _ = run(frames, cfg)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 1 and 20 <= appeared[0].frame <= 20 + 15


def test_no_frame_of_a_crowd_searches_the_whole_frame_at_every_size() -> None:
    """Each search of the whole frame covers one band of sizes; all of them together
    reach min_size."""
    cfg = load(None, {"motion.enabled": False})  # the periodic schedule, sliced
    calls: list[tuple] = []
    original = FaceDetector.search

    def spy(self: FaceDetector, pyramid: Pyramid, region=None, sizes=None, blank=None):
        calls.append((region, sizes))
        return original(self, pyramid, region, sizes, blank)

    frames = crowd_clip(2 * cfg.detector.full_every, 4, 3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FaceDetector, "search", spy)
        run(frames, cfg)
    whole = [sizes for region, sizes in calls if region is None]
    assert whole and all(sizes is not None for sizes in whole)
    smallest = min(lo for lo, _ in whole)
    assert smallest <= cfg.detector.min_size
    for lo, hi in whole:
        assert not (lo <= smallest and hi >= min(HD)), (lo, hi)
