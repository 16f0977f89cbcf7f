"""The threaded pipeline: capture -> [frames] -> workers (detect + classify) -> collector
(re-order, track, smooth) -> [events] -> sinks.

- Capture runs in its own thread. Live sources drop the OLDEST queued frame when the
  workers are behind (latency over completeness) and count it; files never drop.
- One or more workers detect faces and classify all faces of a frame in one invoke.
- The collector puts results back in capture order before tracking, so events come out
  in order whatever the number of workers.
- Sinks run in their own thread behind an unbounded queue: a slow sink never stalls
  capture, and no event is dropped on the way; the sink thread also hands them the
  runtime state (``Stats.status``) every ``status_every_s``.
- One end marker, ``END``, ends each queue: behind the last frame (one per worker), in
  the results (each worker's, in capture order), and behind the last event.
- One ``threading.Event`` stops everything; an exception in any thread ends the run with
  that error, and every thread exits within a fraction of a second.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from edge.capture.queues import FrameQueue
from edge.capture.reconnect import Reconnecting
from edge.capture.sources import FrameSource, SourceError
from edge.events import EmotionEvent
from edge.frames import Frame
from edge.runtime.settings import Classifier, PipelineSettings
from edge.sinks import Sink
from edge.sinks.group import SinkGroup
from edge.stats import Count, Stats
from edge.vision.boxes import Box
from edge.vision.faces import FaceDetector, extract_faces
from edge.vision.motion import Motion
from edge.vision.plans import Tracked
from edge.vision.quality import judge
from edge.vision.schedule import DetectionSchedule
from edge.vision.tracking import Tracker

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often blocked threads look at the stop flags


class _End:
    """Marks the end of a stream in a queue."""


END = _End()


class Captured(NamedTuple):
    """A frame on its way to the workers, with what the capture thread measured on it."""

    frame: Frame
    motion: Motion | None


@dataclass
class FrameResult:
    """What a worker found in one frame."""

    frame: Frame
    boxes: list[Box] = field(default_factory=list)
    probs: np.ndarray | None = None
    classified: np.ndarray | None = None  # per box: whether probs holds a new reading
    searched: bool = True  # see Found.searched
    withheld: list[str | None] | None = None  # per box: why its crop was not classified


@dataclass
class RunResult:
    """How a run ended."""

    frames: int
    events: int
    dropped: int
    error: BaseException | None = None
    stats: dict = field(default_factory=dict)


#: How long :meth:`Pipeline.join` waits for threads to leave once it has aborted them: a
#: native call in progress (a cascade search on a loaded machine, a stream read) ends first.
ABORT_GRACE_S = 5.0


class Pipeline:
    """Runs a source through detection, classification, tracking and sinks.

    Args:
        source: where frames come from.
        workers: one ``(detector, classifier)`` pair per worker thread (neither OpenCV's
            cascade with its buffers nor a TFLite interpreter may be shared by threads).
        tracker: turns detections into events.
        sinks: where events go (fanned out and isolated by a :class:`SinkGroup`).
        settings: queue, limits, pacing, reconnection and detection schedule.
        on_frame: called by the collector with each in-order frame, its boxes and the
            tracker (annotation, video writing); must be quick.
        stats: where stage timings go (a new one by default).
        schedule: where the detector looks in each frame, recording into ``stats``
            (built by :func:`edge.assemble.build_schedule`; by default a full search on
            every frame).
    """

    def __init__(self, source: FrameSource, workers: Sequence[tuple[FaceDetector, Classifier]],
                 tracker: Tracker, sinks: Sequence[Sink],
                 settings: PipelineSettings | None = None, *,
                 on_frame: Callable[[Frame, list[Box], Tracker], None] | None = None,
                 stats: Stats | None = None,
                 schedule: DetectionSchedule | None = None) -> None:
        if not workers:
            raise ValueError("at least one (detector, classifier) worker is needed")
        s = settings or PipelineSettings()
        self.settings = s
        self.source = source
        self.workers = list(workers)
        self.tracker = tracker
        self.on_frame = on_frame
        self.stats = stats or Stats()
        self.sinks = SinkGroup(sinks, self.stats)
        self.schedule = schedule or DetectionSchedule(1, 0.5, self.stats)
        live = source.live if s.drop_oldest is None else s.drop_oldest
        self.frames: FrameQueue[Captured | _End] = FrameQueue(
            s.queue_size, drop_oldest=live or s.rate is not None, keep=_End)
        # (capture order, a frame's result or END): one END per worker, in order too
        self.results: queue.Queue[tuple[int, FrameResult | _End]] = queue.Queue()
        self.events: queue.Queue[EmotionEvent | _End] = queue.Queue()
        self.stop_event = threading.Event()  # graceful: stop capturing, drain, flush
        self.abort_event = threading.Event()  # an error: everybody out now
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._done = threading.Event()

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

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended; True when it has."""
        return self._done.wait(timeout)

    def join(self, timeout: float = 2.0, abort_grace: float = ABORT_GRACE_S) -> RunResult:
        """Wait for every thread to drain (up to ``timeout`` s in all), then abort those
        still running and wait for them to leave (up to ``abort_grace`` s); close the
        sinks and the source.

        A thread still inside a native call (a decode, a cascade search, an invoke) ends
        it before it sees the abort; the source is closed only once the capture thread has
        left it, since releasing a capture in the middle of a read can crash the process.
        """
        self._join_all(time.monotonic() + timeout)
        if any(t.is_alive() for t in self._threads):
            self.abort_event.set()
            self.stop_event.set()  # capture stops too, once it is out of its read
            self._join_all(time.monotonic() + abort_grace)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("threads still running %.1f s after the abort: %s", abort_grace,
                      ", ".join(alive))
        self.sinks.close()
        if "capture" in alive:
            log.warning("the source is left open: the capture thread is still reading it")
        else:
            try:
                self.source.close()
            except Exception:
                log.exception("closing the source failed")
        snap = self.stats.snapshot()
        return RunResult(frames=snap["counters"].get(Count.FRAMES, 0),
                         events=snap["counters"].get("events", 0), dropped=self.frames.dropped,
                         error=self.error, stats=snap)

    def _join_all(self, deadline: float) -> None:
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

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
            # Failures of the outside world (a source, a file) are one line; anything
            # else is a bug, logged with where it happened.
            log.error("%s thread failed: %s", threading.current_thread().name, exc,
                      exc_info=not isinstance(exc, (SourceError, OSError)))
            self._errors.append(exc)
            self.abort_event.set()
            self.stop_event.set()
            self._done.set()

    # -- threads -------------------------------------------------------------------------

    def _capture(self) -> None:
        stats, limit, rate = self.stats, self.settings.max_frames, self.settings.rate
        source = Reconnecting(self.source, self.settings.reconnect, stats, self.stop_event)
        n, period = 0, (1.0 / rate if rate else 0.0)
        opened = source.open()
        t_start = time.monotonic()
        while opened and not self.stop_event.is_set():
            if limit and n >= limit:
                break
            if period:
                delay = t_start + n * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.perf_counter()
            frame = source.read()
            if frame is None:
                break
            stats.record("capture", time.perf_counter() - t0 - frame.gray_s)
            stats.record("gray", frame.gray_s)
            motion = self.schedule.observe(frame)
            n += 1
            self.frames.offer(Captured(frame, motion), self.abort_event)
            stats.set("dropped", self.frames.dropped)
        for _ in self.workers:
            self.frames.offer(END, self.abort_event)

    def _worker(self, detector: FaceDetector, classifier: Classifier) -> None:
        stats, margin = self.stats, self.settings.margin
        crops: np.ndarray | None = None
        while not self.abort_event.is_set():
            taken = self.frames.take(timeout=_POLL_S)
            if taken is None:
                continue
            order, item = taken
            if isinstance(item, _End):
                self.results.put((order, END))
                return
            frame = item.frame
            found = self.schedule.find(detector, frame, order, item.motion)
            boxes = found.boxes
            fresh = [i for i, reuse in enumerate(found.reuse) if not reuse]
            rows = np.zeros((len(boxes), len(classifier.labels)), np.float32)
            classified = np.zeros(len(boxes), bool)
            withheld: list[str | None] = [None] * len(boxes)
            if fresh:
                t0 = time.perf_counter()
                crops = extract_faces(frame.gray, [boxes[i] for i in fresh], margin, crops,
                                      [found.eyes[i] for i in fresh] if found.eyes else None)
                turns = found.turns or [None] * len(boxes)
                for k, i in enumerate(fresh):
                    withheld[i] = judge(boxes[i], crops[k], self.settings.quality, turns[i])
                usable = [k for k, i in enumerate(fresh) if withheld[i] is None]
                t1 = time.perf_counter()
                stats.record("crop", t1 - t0)
                if usable:
                    probs = classifier.classify(
                        crops if len(usable) == len(crops) else crops[usable])
                    t2 = time.perf_counter()
                    stats.record("classify", t2 - t1)
                    stats.record("classify_face", (t2 - t1) / len(usable))
                    rows[[fresh[k] for k in usable]] = probs
                    classified[[fresh[k] for k in usable]] = True
                if len(usable) < len(fresh):
                    stats.add(Count.CLASSIFY_WITHHELD, len(fresh) - len(usable))
            if len(fresh) < len(boxes):
                # Not classified: the tracker carries the face's last probabilities over.
                stats.add(Count.CLASSIFY_REUSED, len(boxes) - len(fresh))
            self.results.put((order, FrameResult(frame, boxes, rows, classified,
                                                 searched=found.searched, withheld=withheld)))

    def _collector(self) -> None:
        pending: list[tuple[int, int, FrameResult | _End]] = []
        expected, done_workers, tie = 0, 0, 0
        last: Frame | None = None
        tracker, stats = self.tracker, self.stats
        while not self.abort_event.is_set():
            try:
                order, res = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            tie += 1
            heapq.heappush(pending, (order, tie, res))
            while pending and pending[0][0] == expected:
                _, _, res = heapq.heappop(pending)
                expected += 1
                if isinstance(res, _End):
                    done_workers += 1
                    continue
                frame = res.frame
                with stats.timed("track"):
                    events = tracker.update(frame.seq, frame.ts, frame.mono, res.boxes,
                                            res.probs, searched=res.searched,
                                            withheld=res.withheld, classified=res.classified)
                if self.schedule.follows_tracks:
                    self.schedule.track([Tracked(t.box, t.in_view, t.id)
                                         for t in tracker.tracks])
                for ev in events:
                    self.events.put(ev)
                stats.set("faces", tracker.counted())
                stats.set("withheld", tracker.withheld())
                stats.set("dominant", tracker.dominant())
                if res.boxes:
                    stats.add(Count.FACES_DETECTED, len(res.boxes))
                    stats.add(Count.FRAMES_WITH_FACE)
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
        stats, sinks = self.stats, self.sinks
        every = self.settings.status_every_s
        next_status = time.monotonic() + every if every else math.inf
        while not self.abort_event.is_set():
            if time.monotonic() >= next_status:
                # Runtime state (faces, fps, source health) read from Stats, in the sinks'
                # own thread like their events.
                sinks.status(stats.status())
                next_status = time.monotonic() + every
            try:
                ev = self.events.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(ev, _End):
                sinks.flush()
                self._done.set()
                return
            with stats.timed("sink"):
                sinks.write(ev)
            stats.record("latency", time.monotonic() - ev.captured_mono)
            stats.add(Count.EVENTS)
