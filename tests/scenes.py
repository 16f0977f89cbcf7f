"""Generated scenes for the detection tests: the bundled astronaut's face pasted on a
smooth background, and the real pipeline (real cascade) run over such frames."""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import Config
from edge.preprocessing import EMOTIONS
from edge.runtime.pipeline import Pipeline
from edge.stats import Stats
from edge.vision.tracking import Tracker
from tests.fakes import BrightnessClassifier, ClipSource, ListSink
from tests.fixtures import ROOT

PHOTO = ROOT / "models/sample/astronaut.jpg"
SIZE = (240, 320)  # frame height, width: at detect_width, so no downscale blurs the test


def face_patch(side: int) -> np.ndarray:
    gray = cv2.imread(str(PHOTO), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(gray[34:194, 144:304], (side, side), interpolation=cv2.INTER_AREA)


def background(size: tuple[int, int] = SIZE) -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(60, 160, size, dtype=np.uint8), (0, 0), 6)
    return cv2.normalize(smooth, None, 70, 150, cv2.NORM_MINMAX)


def make_clip(n: int, place: callable, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """``n`` frames of a still background of ``size`` (height, width) with a 100-pixel
    face where ``place(i)`` puts it: ``(x, y, gain)`` or ``None`` for no face."""
    side = 100
    face_img, bg = face_patch(side), background(size)
    frames = []
    for i in range(n):
        f = bg.copy()
        at = place(i)
        if at is not None:
            x, y, gain = at
            f[y:y + side, x:x + side] = np.clip(face_img.astype(np.float32) * gain, 0, 255)
        frames.append(f)
    return frames


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
