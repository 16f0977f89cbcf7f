"""Stand-ins for the device's parts, shared by the tests: sources, a detector, classifiers
and sinks that run in memory and record what the pipeline did with them."""

from __future__ import annotations

import random
import threading
import time

import numpy as np

from edge.capture.sources import SourceError
from edge.config import DetectorConfig, QualityConfig, TrackingConfig
from edge.events import EmotionEvent
from edge.frames import Frame
from edge.preprocessing import EMOTIONS
from edge.runtime.pipeline import Pipeline
from edge.runtime.settings import PipelineSettings
from edge.vision.tracking import Tracker


class FakeSource:
    """``count`` small frames (forever when None), optionally paced and failing."""

    def __init__(self, count: int | None, live: bool, period: float = 0.0,
                 fail_at: set[int] | None = None, fail_opens: int = 0,
                 reopen_gate: threading.Event | None = None) -> None:
        self.count, self.live, self.period = count, live, period
        self.fail_at = fail_at or set()
        self.fail_opens = fail_opens
        self.reopen_gate = reopen_gate  # failed opens go on until it is set
        self.n = 0
        self.opens = 0
        self.gray = np.zeros((120, 160), np.uint8)

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens or (self.reopen_gate is not None
                                             and not self.reopen_gate.is_set()):
            raise SourceError("cannot open video source 0")

    def read(self) -> Frame | None:
        if self.count is not None and self.n >= self.count:
            return None
        if self.period:
            time.sleep(self.period)
        if self.n in self.fail_at:
            self.fail_at.discard(self.n)
            raise SourceError("camera unplugged")
        f = Frame(self.n, time.time(), time.monotonic(), self.gray)
        self.n += 1
        return f

    def close(self) -> None:
        pass


class FakeDetector:
    """One face box per frame, in the same place."""

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list:
        return [(40, 30, 60, 60)]

    def smallest(self, width: int) -> int:
        return 48

    base = 24
    cfg = DetectorConfig()

    def search(self, pyramid: object, region: object = None, sizes: object = None,
               blank: object = None) -> list:
        return [(40, 30, 60, 60)]


class FakeClassifier:
    labels = EMOTIONS

    def __init__(self, delay: float = 0.0, jitter: float = 0.0, fail_on: int | None = None,
                 seed: int = 0):
        self.delay, self.jitter, self.fail_on = delay, jitter, fail_on
        self.calls = 0
        self.rng = random.Random(seed)

    def classify(self, faces: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail_on is not None and self.calls >= self.fail_on:
            raise RuntimeError("interpreter exploded")
        time.sleep(self.delay + self.rng.random() * self.jitter)
        out = np.full((len(faces), len(EMOTIONS)), 0.01, np.float32)
        out[:, EMOTIONS.index("happy")] = 0.94
        return out


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.events: list[EmotionEvent] = []
        self.statuses: list[dict] = []
        self.flushed = 0
        self.closed = False

    def write(self, event: EmotionEvent) -> None:
        self.events.append(event)

    def status(self, stats: dict) -> None:
        self.statuses.append(stats)

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        self.closed = True


class BrokenSink(ListSink):
    name = "broken"

    def write(self, event: EmotionEvent) -> None:
        raise OSError("disk full")


def make(source, classifiers, sinks=None, **kw) -> tuple[Pipeline, ListSink, list[int]]:
    sink = ListSink()
    seen: list[int] = []
    tracker = Tracker(TrackingConfig(min_hits=1), EMOTIONS, "dev", "m")
    # The fake frames are flat gray: every crop is worth classifying here.
    kw.setdefault("quality", QualityConfig(min_face=0, min_sharpness=0))
    p = Pipeline(source, [(FakeDetector(), c) for c in classifiers], tracker,
                 [sink, *(sinks or [])], PipelineSettings(**kw),
                 on_frame=lambda f, b, t: seen.append(f.seq))
    return p, sink, seen


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
