"""Stage latencies and counters, recorded by the pipeline threads, read by stats and bench.

The one piece of state the pipeline threads share besides their queues; every access
holds the lock, and readers get copies.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

import numpy as np

#: Stages in pipeline order, with the name reports print for each.
STAGES: dict[str, str] = {
    "capture": "capture/decode", "gray": "gray", "motion": "motion", "resize": "resize",
    "detect": "detect", "crop": "crop", "classify": "classify/frame",
    "classify_face": "classify/face", "track": "track", "sink": "sink",
    "frame_latency": "capture->result", "latency": "capture->event",
}


class Count(StrEnum):
    """The counters the device keeps, by name (their values are the names reports use)."""

    FRAMES = "frames"  # frames through the whole pipeline
    EVENTS = "events"  # events handed to the sinks
    FACES_DETECTED = "faces_detected"  # face boxes, all frames
    FRAMES_WITH_FACE = "frames_with_face"
    CLASSIFY_REUSED = "classify_reused"  # faces whose last reading counted again
    CLASSIFY_WITHHELD = "classify_withheld"  # crops not worth classifying
    SOURCE_ERRORS = "source_errors"  # each failed read or open of a live source
    SOURCE_RECONNECTS = "source_reconnects"  # times a lost source came back
    DETECT_FULL = "detect_full"  # searches of the whole frame at every size
    DETECT_PARTIAL = "detect_partial"  # windows around known faces
    DETECT_FALLBACK = "detect_fallback"  # wider searches for a face its window missed
    DETECT_SLICE = "detect_slice"  # one band of sizes of a spread full search
    DETECT_SAFETY = "detect_safety"  # safety slices (faces that appear without moving)
    DETECT_MOTION = "detect_motion"  # searches of moving areas
    DETECT_STILL = "detect_still"  # still faces kept without a search
    DETECT_FOLLOWED = "detect_followed"  # faces followed by template alone
    DETECT_KEPT = "detect_kept"  # YuNet: steady faces kept between passes


#: Upper bounds (seconds) of the cumulative latency histograms each stage also keeps, for
#: Prometheus: 0.1 ms to 2.5 s, about three per decade.
BUCKETS_S: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Stats:
    """Thread-safe ring buffers of stage durations plus counters.

    Args:
        window: samples kept per stage for percentiles.
    """

    def __init__(self, window: int = 4096) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._counters: dict[str, int] = {}
        self._frame_times: deque[float] = deque(maxlen=window)
        self._gauges: dict[str, object] = {}
        self._published: dict[str, Callable[[], dict]] = {}
        # stage -> [count per bucket (+inf last)], sum of seconds: since the start.
        self._hist: dict[str, tuple[list[int], list[float]]] = {}
        self.started = time.monotonic()

    def record(self, stage: str, seconds: float) -> None:
        """Add one duration sample for ``stage``."""
        slot = bisect.bisect_left(BUCKETS_S, seconds)
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=4096)).append(seconds)
            counts, total = self._hist.setdefault(stage, ([0] * (len(BUCKETS_S) + 1), [0.0]))
            counts[slot] += 1
            total[0] += seconds

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Record the time the ``with`` block takes as one sample of ``stage``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - t0)

    def add(self, counter: str, n: int = 1) -> None:
        """Increase a counter."""
        with self._lock:
            self._counters[counter] = self._counters.get(counter, 0) + n

    def set(self, gauge: str, value: object) -> None:
        """Set a gauge (latest value wins), e.g. faces in view or source state."""
        with self._lock:
            self._gauges[gauge] = value

    def publish(self, name: str, figures: Callable[[], dict]) -> None:
        """Let a part of the device (a sink) report its own figures, read when asked:
        the web page and ``/metrics`` see them without knowing the part."""
        with self._lock:
            self._published[name] = figures

    def published(self) -> dict[str, dict]:
        """Each publishing part's figures now, by its name."""
        with self._lock:
            parts = dict(self._published)
        return {name: figures() for name, figures in parts.items()}

    def frame_done(self, when: float | None = None) -> None:
        """Mark one frame fully processed (for the frame rate)."""
        with self._lock:
            self._frame_times.append(time.monotonic() if when is None else when)
            self._counters[Count.FRAMES] = self._counters.get(Count.FRAMES, 0) + 1

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def gauge(self, name: str, default: object = None) -> object:
        with self._lock:
            return self._gauges.get(name, default)

    def fps(self, horizon_s: float = 5.0) -> float:
        """Frames per second over the last ``horizon_s`` seconds."""
        with self._lock:
            times = list(self._frame_times)
        if len(times) < 2:
            return 0.0
        now = time.monotonic()
        recent = [t for t in times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def histograms(self) -> dict[str, tuple[list[int], float]]:
        """Per stage, counts per :data:`BUCKETS_S` bucket (the last: above them) and the sum
        of seconds, since the start: cumulative, as Prometheus histograms want."""
        with self._lock:
            return {k: (list(c), t[0]) for k, (c, t) in self._hist.items()}

    def snapshot(self) -> dict:
        """Counters, gauges and per-stage p50/p95/p99/mean in milliseconds."""
        with self._lock:
            samples = {k: np.fromiter(v, float) for k, v in self._samples.items() if v}
            counters = dict(self._counters)
            gauges = dict(self._gauges)
        stages = {
            k: {"p50_ms": round(float(np.percentile(v, 50)) * 1e3, 3),
                "p95_ms": round(float(np.percentile(v, 95)) * 1e3, 3),
                "p99_ms": round(float(np.percentile(v, 99)) * 1e3, 3),
                "mean_ms": round(float(v.mean()) * 1e3, 3),
                "n": int(v.size)}
            for k, v in samples.items()
        }
        return {"counters": counters, "gauges": gauges, "stages": stages,
                "fps": round(self.fps(), 2), "uptime_s": round(time.monotonic() - self.started, 1)}

    def status(self) -> dict:
        """The device's state now, as MQTT ``state`` and ``/api/state`` publish it: faces
        in view, the dominant emotion, fps, source health, frames, drops, events,
        uptime, the detector and the faces whose emotion is withheld."""
        snap = self.snapshot()
        c, g = snap["counters"], snap["gauges"]
        return {"faces": g.get("faces", 0), "dominant": g.get("dominant"), "fps": snap["fps"],
                "source": g.get("source", "ok"), "frames": c.get("frames", 0),
                "dropped": g.get("dropped", 0), "events": c.get("events", 0),
                "uptime_s": snap["uptime_s"], "detector": g.get("detector"),
                "withheld": g.get("withheld", {})}

    def line(self) -> str:
        """One human-readable stats line for the log."""
        snap = self.snapshot()
        c, g, s = snap["counters"], snap["gauges"], snap["stages"]

        def p50(stage: str) -> str:
            return f"{s[stage]['p50_ms']:.1f}" if stage in s else "-"

        return (f"fps {snap['fps']:.1f} | frames {c.get('frames', 0)} | faces {g.get('faces', 0)} "
                f"| dropped {g.get('dropped', 0)} | events {c.get('events', 0)} | p50 ms: "
                f"capture {p50('capture')} detect {p50('detect')} classify {p50('classify')} "
                f"track {p50('track')} sink {p50('sink')} | capture->event {p50('latency')}")
