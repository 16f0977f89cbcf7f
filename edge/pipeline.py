"""The threaded pipeline: capture -> [frames] -> workers (detect + classify) -> collector
(re-order, track, smooth) -> [events] -> sinks.

- Capture runs in its own thread. Live sources drop the OLDEST queued frame when the
  workers are behind (latency over completeness) and count it; files never drop.
- One or more workers detect faces and classify all faces of a frame in one invoke.
- The collector puts results back in capture order before tracking, so events come out
  in order whatever the number of workers.
- Sinks run in their own thread behind an unbounded queue: a slow sink never stalls
  capture, and no event is dropped on the way.
- One ``threading.Event`` stops everything; an exception in any thread ends the run with
  that error, and every thread exits within a fraction of a second.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.events import EmotionEvent
from edge.faces import Box, FaceDetector, extract_faces
from edge.sinks import Sink
from edge.sources import Frame, FrameSource, SourceError
from edge.stats import Stats
from edge.tracking import Tracker

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often blocked threads look at the stop flags


class _End:
    """Marks the end of a stream in a queue."""


END = _End()


@dataclass(frozen=True)
class _Status:
    """Runtime state for the sinks, carried through the event queue."""

    state: dict


class FrameQueue(queue.Queue):
    """A bounded frame queue that stamps each item with a gapless dispatch number.

    With ``drop_oldest``, a full queue discards its oldest frame to make room and counts
    it; the dispatch number is given at ``get`` time, so dropped frames leave no gap for
    the collector to wait on.
    """

    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        super().__init__(maxsize)
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._dispatched = 0

    def offer(self, item: object, stop: threading.Event) -> bool:
        """Queue ``item``: drop the oldest when full (live) or wait for room (files).

        Returns False when ``stop`` was set while waiting.
        """
        if self.drop_oldest:
            with self.mutex:
                if self._qsize() >= self.maxsize and not isinstance(item, _End):
                    old = self.queue.popleft()
                    if isinstance(old, _End):  # never drop an end marker
                        self.queue.appendleft(old)
                    else:
                        self.dropped += 1
                        self.unfinished_tasks -= 1
                self._put(item)
                self.unfinished_tasks += 1
                self.not_empty.notify()
            return True
        while not stop.is_set():
            try:
                self.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self) -> tuple[int, Any]:
        item = self.queue.popleft()
        n = self._dispatched
        self._dispatched += 1
        return n, item


@dataclass
class FrameResult:
    """What a worker found in one frame."""

    order: int
    frame: Frame | None
    boxes: list[Box] = field(default_factory=list)
    probs: np.ndarray | None = None
    done: bool = False  # a worker's end-of-stream marker


@dataclass
class RunResult:
    """How a run ended."""

    frames: int
    events: int
    dropped: int
    error: BaseException | None = None
    stats: dict = field(default_factory=dict)


class Classifier(Protocol):
    """What the pipeline needs from a classifier (``edge.model.EmotionClassifier``)."""

    labels: tuple[str, ...]

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """``(N, len(labels))`` probabilities for ``(N, 48, 48)`` uint8 faces."""


class Pipeline:
    """Runs a source through detection, classification, tracking and sinks.

    Args:
        source: where frames come from.
        workers: one ``(detector, classifier)`` pair per worker thread (neither OpenCV's
            cascade with its buffers nor a TFLite interpreter may be shared by threads).
        tracker: turns detections into events.
        sinks: where events go.
        margin: crop margin around face boxes.
        queue_size: frame queue length.
        max_frames: stop after this many frames (0: no limit).
        drop_oldest: drop the oldest frame when behind; defaults to ``source.live``.
        rate: pace reading at this many frames per second (replaying a file as a camera).
        reconnect: (initial, max) seconds between attempts to reopen a failed live source.
        full_every: run a full-frame detection every this many frames, and in between only
            around the faces being tracked.
        region_margin: how far around a tracked face to look between full detections.
        on_frame: called by the collector with each in-order frame, its boxes and the
            tracker (annotation, video writing); must be quick.
        stats: where stage timings go (a new one by default).
    """

    def __init__(self, source: FrameSource, workers: Sequence[tuple[FaceDetector, Classifier]],
                 tracker: Tracker, sinks: Sequence[Sink],
                 *, margin: float = 0.15, queue_size: int = 4, max_frames: int = 0,
                 drop_oldest: bool | None = None, rate: float | None = None,
                 reconnect: tuple[float, float] = (1.0, 30.0), full_every: int = 1,
                 region_margin: float = 0.5,
                 on_frame: Callable[[Frame, list[Box], Tracker], None] | None = None,
                 stats: Stats | None = None) -> None:
        if not workers:
            raise ValueError("at least one (detector, classifier) worker is needed")
        self.source = source
        self.workers = list(workers)
        self.tracker = tracker
        self.sinks = list(sinks)
        self.margin = margin
        self.max_frames = max_frames
        self.rate = rate
        self.reconnect = reconnect
        self.full_every = full_every
        self.region_margin = region_margin
        self.on_frame = on_frame
        self.stats = stats or Stats()
        live = source.live if drop_oldest is None else drop_oldest
        self.frames = FrameQueue(queue_size, drop_oldest=live or rate is not None)
        self.results: queue.Queue[FrameResult] = queue.Queue()
        self.events: queue.Queue[EmotionEvent | _Status | _End] = queue.Queue()
        self.stop_event = threading.Event()  # graceful: stop capturing, drain, flush
        self.abort_event = threading.Event()  # an error: everybody out now
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._done = threading.Event()
        # Latest tracked regions, published by the collector for the workers' partial
        # detections; replaced whole (an immutable tuple), never mutated.
        self._regions: tuple[Box, ...] = ()
        self._last_sink_failure = ""  # the sink thread's own

    # -- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Start all threads; returns at once."""
        specs: list[tuple[str, Callable[..., None], tuple]] = [("capture", self._capture, ())]
        specs += [(f"worker-{i}", self._worker, w) for i, w in enumerate(self.workers)]
        specs += [("collector", self._collector, ()), ("sinks", self._sink_loop, ())]
        for name, target, args in specs:
            t = threading.Thread(target=self._guard, args=(target, *args), name=name,
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Ask for a graceful stop: capture ends, queued work drains, sinks flush."""
        self.stop_event.set()

    def publish_status(self, state: dict) -> None:
        """Hand runtime state (faces, fps, source health) to every sink's ``status``."""
        self.events.put(_Status(state))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended; True when it has."""
        return self._done.wait(timeout)

    def join(self, timeout: float = 2.0) -> RunResult:
        """Wait for every thread (up to ``timeout`` s in all) and close the sinks."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self.abort_event.set()
            log.error("threads still running after %.1f s: %s", timeout, ", ".join(alive))
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %s failed", sink.name)
        try:
            self.source.close()
        except Exception:
            log.exception("closing the source failed")
        snap = self.stats.snapshot()
        return RunResult(frames=snap["counters"].get("frames", 0),
                         events=snap["counters"].get("events", 0), dropped=self.frames.dropped,
                         error=self.error, stats=snap)

    def run(self) -> RunResult:
        """Start, wait for the end (or a stop), and join."""
        self.start()
        try:
            while not self._done.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self._done.wait(2.0)
        return self.join()

    @property
    def error(self) -> BaseException | None:
        """The first exception raised in a pipeline thread, if any."""
        return self._errors[0] if self._errors else None

    def _guard(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        except BaseException as exc:
            log.error("%s thread failed: %s", threading.current_thread().name, exc,
                      exc_info=not isinstance(exc, SourceError))
            self._errors.append(exc)
            self.abort_event.set()
            self.stop_event.set()
            self._done.set()

    # -- threads -------------------------------------------------------------------------

    def _capture(self) -> None:
        src, stats = self.source, self.stats
        self._open_source()
        n, period = 0, (1.0 / self.rate if self.rate else 0.0)
        t_start = time.monotonic()
        while not self.stop_event.is_set():
            if self.max_frames and n >= self.max_frames:
                break
            if period:
                delay = t_start + n * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.perf_counter()
            try:
                frame = src.read()
            except SourceError as exc:
                if not src.live:
                    raise
                stats.add("source_errors")
                log.warning("%s; reconnecting", exc)
                if not self._reopen_source():
                    break
                continue
            if frame is None:
                break
            stats.record("capture", time.perf_counter() - t0 - frame.gray_s)
            stats.record("gray", frame.gray_s)
            n += 1
            self.frames.offer(frame, self.abort_event)
            stats.set("dropped", self.frames.dropped)
        for _ in self.workers:
            self.frames.offer(END, self.abort_event)

    def _open_source(self) -> None:
        try:
            self.source.open()
            self.stats.set("source", "ok")
        except SourceError:
            if not self.source.live:
                raise
            self.stats.set("source", "down")
            if not self._reopen_source(first_failed=True):
                return

    def _reopen_source(self, first_failed: bool = False) -> bool:
        """Close and reopen a live source with capped exponential backoff until it opens
        or a stop is asked for; False on stop."""
        delay, max_delay = self.reconnect
        self.stats.set("source", "down")
        if not first_failed:
            self.source.close()
        while not self.stop_event.wait(delay):
            try:
                self.source.open()
            except SourceError as exc:
                self.stats.add("source_errors")
                delay = min(delay * 2, max_delay)
                log.warning("%s; next attempt in %.1f s", exc, delay)
                continue
            self.stats.set("source", "ok")
            self.stats.add("source_reconnects")
            log.info("source is back")
            return True
        return False

    def _worker(self, detector: FaceDetector, classifier: Classifier) -> None:
        stats, margin = self.stats, self.margin
        crops: np.ndarray | None = None
        empty = np.empty((0, len(classifier.labels)), np.float32)
        while not self.abort_event.is_set():
            try:
                order, item = self.frames.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                self.results.put(FrameResult(order, None, done=True))
                return
            frame: Frame = item
            boxes = self._detect(detector, frame, order)
            if boxes:
                t0 = time.perf_counter()
                crops = extract_faces(frame.gray, boxes, margin, crops)
                t1 = time.perf_counter()
                probs = classifier.classify(crops)
                t2 = time.perf_counter()
                stats.record("crop", t1 - t0)
                stats.record("classify", t2 - t1)
                stats.record("classify_face", (t2 - t1) / len(boxes))
            else:
                probs = empty
            self.results.put(FrameResult(order, frame, boxes, probs))

    def _detect(self, det: FaceDetector, frame: Frame, order: int) -> list[Box]:
        """Full-frame detection every ``full_every`` frames; in between, only around the
        tracked faces, falling back to a full detection when one of them is not found
        (it moved fast, or the scene cut) or when nobody is tracked."""
        stats = self.stats
        regions = self._regions
        if self.full_every > 1 and regions and order % self.full_every != 0:
            t0 = time.perf_counter()
            boxes = det.detect_around(frame.gray, list(regions), self.region_margin)
            stats.record("detect", time.perf_counter() - t0)
            if len(boxes) >= len(regions):
                stats.add("detect_partial")
                return boxes
            stats.add("detect_fallback")
        t0 = time.perf_counter()
        small = frame.small_gray if frame.small_gray is not None else det.downscale(frame.gray)
        t1 = time.perf_counter()
        boxes = det.detect(frame.gray, small)
        t2 = time.perf_counter()
        stats.record("resize", t1 - t0)
        stats.record("detect", t2 - t1)
        stats.add("detect_full")
        return boxes

    def _collector(self) -> None:
        pending: list[tuple[int, int, FrameResult]] = []
        expected, done_workers, tie = 0, 0, 0
        last: Frame | None = None
        tracker, stats = self.tracker, self.stats
        while not self.abort_event.is_set():
            try:
                res = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            tie += 1
            heapq.heappush(pending, (res.order, tie, res))
            while pending and pending[0][0] == expected:
                _, _, res = heapq.heappop(pending)
                expected += 1
                if res.done:
                    done_workers += 1
                    continue
                frame = res.frame
                assert frame is not None
                t0 = time.perf_counter()
                events = tracker.update(frame.seq, frame.ts, frame.mono, res.boxes, res.probs)
                stats.record("track", time.perf_counter() - t0)
                if self.full_every > 1:
                    self._regions = tuple(tracker.boxes())
                for ev in events:
                    self.events.put(ev)
                stats.set("faces", sum(1 for t in tracker.tracks if t.confirmed))
                stats.set("dominant", tracker.dominant())
                if res.boxes:
                    stats.add("faces_detected", len(res.boxes))
                    stats.add("frames_with_face")
                stats.record("frame_latency", time.monotonic() - frame.mono)
                stats.frame_done()
                if self.on_frame is not None:
                    self.on_frame(frame, res.boxes, tracker)
                last = frame
            if done_workers == len(self.workers):
                if last is not None:
                    for ev in tracker.flush(last.seq, time.time(), time.monotonic()):
                        self.events.put(ev)
                self.events.put(END)
                return

    def _sink_loop(self) -> None:
        stats = self.stats
        while not self.abort_event.is_set():
            try:
                ev = self.events.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(ev, _End):
                for sink in self.sinks:
                    self._safe(sink, "flush")
                self._done.set()
                return
            if isinstance(ev, _Status):
                for sink in self.sinks:
                    self._safe(sink, "status", ev.state)
                continue
            t0 = time.perf_counter()
            for sink in self.sinks:
                self._safe(sink, "write", ev)
            t1 = time.perf_counter()
            stats.record("sink", t1 - t0)
            stats.record("latency", time.monotonic() - ev.captured_mono)
            stats.add("events")

    def _safe(self, sink: Sink, method: str, *args: object) -> None:
        """Call a sink (sink thread only); a failing sink is counted and logged, one line
        per distinct failure, and never stops the run."""
        try:
            getattr(sink, method)(*args)
        except Exception as exc:
            self.stats.add(f"sink_errors.{sink.name}")
            msg = f"{sink.name}.{method}: {exc}"
            if msg != self._last_sink_failure:
                log.error("sink %s failed: %s", f"{sink.name}.{method}", exc)
            self._last_sink_failure = msg
