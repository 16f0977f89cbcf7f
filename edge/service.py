"""Config -> pipeline, and the service loop around it: stats, signals, systemd, video.

``build()`` turns a :class:`~edge.config.Config` into ready components and raises a
clear error for anything the user must fix (exit code 2); ``Service.run()`` runs the
pipeline until its source ends or a signal arrives (0), or a thread fails (1).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge.annotate import draw_faces, draw_fps
from edge.config import Config, ConfigError
from edge.faces import Box, DetectorError, FaceDetector
from edge.model import EmotionClassifier, ModelCard, ModelError, card_path_for
from edge.notify import Notifier
from edge.pipeline import Pipeline, RunResult
from edge.sinks import Sink
from edge.sources import Frame, FrameSource, local_path, make_source
from edge.stats import Stats
from edge.tracking import Tracker

log = logging.getLogger(__name__)

#: Seconds a stop may take to drain the queues and flush the sinks before giving up.
STOP_GRACE_S = 1.4

#: Errors that mean "fix the config or the files" (exit code 2), not a runtime failure.
STARTUP_ERRORS = (ConfigError, ModelError, DetectorError)


def build_sinks(cfg: Config) -> list[Sink]:
    """The enabled sinks, in the order events are written to them."""
    sinks: list[Sink] = []
    s = cfg.sinks
    if s.log.enabled:
        from edge.sinks.jsonl import JsonLinesSink

        try:
            sinks.append(JsonLinesSink(s.log.path, s.log.max_bytes, s.log.backups))
        except OSError as exc:
            raise ConfigError(f"sinks.log.path: cannot write {s.log.path} ({exc.strerror})") \
                from None
    if s.stdout.enabled:
        from edge.sinks.stdout import StdoutSink

        sinks.append(StdoutSink())
    if s.mqtt.enabled:
        from edge.sinks.mqtt import MqttSink

        sinks.append(MqttSink(s.mqtt, cfg.device, Path(cfg.state_dir)))
    if not sinks:
        raise ConfigError("sinks: no sink is enabled; enable sinks.log, sinks.stdout or "
                          "sinks.mqtt (or pass --sink)")
    return sinks


def load_classifiers(cfg: Config, count: int) -> list[EmotionClassifier]:
    """``count`` classifiers on the configured model (one interpreter per worker)."""
    m = cfg.model
    if not Path(m.path).is_file():
        raise ModelError(f"model.path: {m.path}: model file not found")
    card = ModelCard.load(m.card) if m.card else ModelCard.load(card_path_for(m.path))
    return [EmotionClassifier(m.path, card, threads=m.threads, runtime=m.runtime)
            for _ in range(count)]


@dataclass
class Components:
    """Everything a pipeline is made of."""

    source: FrameSource
    workers: list[tuple[FaceDetector, EmotionClassifier]]
    tracker: Tracker
    sinks: list[Sink]


def build(cfg: Config, sinks: list[Sink] | None = None) -> Components:
    """Build source, detectors, classifiers, tracker and sinks from the config.

    Raises:
        ConfigError, ModelError, DetectorError: something the user has to fix.
    """
    src = cfg.source
    path = local_path(src.uri)
    if src.kind != "picamera2" and path is not None and not path.exists():
        raise ConfigError(f"source.uri: {src.uri}: no such file or folder")
    classifiers = load_classifiers(cfg, cfg.pipeline.workers)
    workers = [(FaceDetector(cfg.detector), c) for c in classifiers]
    keep_color = cfg.pipeline.annotate_video is not None
    source = make_source(src, cfg.detector.detect_width, keep_color=keep_color)
    tracker = Tracker(cfg.tracking, classifiers[0].labels, cfg.device, classifiers[0].card.id)
    return Components(source, workers, tracker, sinks if sinks is not None else build_sinks(cfg))


def make_pipeline(cfg: Config, parts: Components, stats: Stats | None = None,
                  rate: float | None = None) -> Pipeline:
    """A pipeline over ``parts`` with the config's settings."""
    stats = stats or Stats()
    on_frame = None
    if cfg.pipeline.annotate_video:
        on_frame = VideoAnnotator(cfg.pipeline.annotate_video, cfg.source.fps, stats)
    return Pipeline(
        parts.source, parts.workers, parts.tracker, parts.sinks,
        margin=cfg.detector.margin, queue_size=cfg.source.queue_size,
        max_frames=cfg.pipeline.max_frames, drop_oldest=cfg.source.realtime, rate=rate,
        reconnect=(cfg.source.reconnect.initial_s, cfg.source.reconnect.max_s),
        full_every=cfg.detector.full_every, region_margin=cfg.detector.region_margin,
        on_frame=on_frame, stats=stats)


class VideoAnnotator:
    """Writes the processed stream with boxes and labels to a video file (collector thread)."""

    def __init__(self, path: str, fps: float, stats: Stats) -> None:
        self.path = path
        self.fps = fps
        self.stats = stats
        self._writer: cv2.VideoWriter | None = None

    def __call__(self, frame: Frame, boxes: list[Box], tracker: Tracker) -> None:
        image = frame.image if frame.image is not None else cv2.cvtColor(frame.gray,
                                                                          cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot write video")
        live = [t for t in tracker.tracks if t.confirmed and t.missed == 0]
        labels = [tracker.labels[t.reported] for t in live]
        draw_faces(image, [t.box for t in live], labels,
                   [float(t.probs[t.reported]) for t in live], [t.id for t in live])
        draw_fps(image, self.stats.fps())
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class Service:
    """Runs a pipeline as a long-lived service: signals, stats lines, systemd notify.

    Args:
        cfg: the configuration.
        pipeline: the pipeline to run.
        notifier: systemd notifier (a no-op outside systemd).
    """

    def __init__(self, cfg: Config, pipeline: Pipeline, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.notifier = notifier or Notifier()
        self._stop = threading.Event()
        self._stop_at = 0.0

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        """Ask for a graceful stop (signal handler)."""
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        if not self._stop.is_set():
            self._stop_at = time.monotonic()
        self._stop.set()
        self.pipeline.stop()

    def run(self, install_signals: bool = True) -> RunResult:
        """Run until the source ends, a signal arrives or a thread fails."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        p, stats, notifier = self.pipeline, self.pipeline.stats, self.notifier
        p.start()
        notifier.ready("starting")
        every = self.cfg.pipeline.stats_every_s
        next_stats = time.monotonic() + every if every else float("inf")
        mqtt = self.cfg.sinks.mqtt
        status_every = mqtt.state_every_s if mqtt.enabled else every
        next_status = time.monotonic() + (status_every or float("inf"))
        next_ping, last_frames, last_progress = time.monotonic(), -1, time.monotonic()
        stall = self.cfg.source.stall_timeout_s
        while not p.wait(0.25):
            now = time.monotonic()
            if self._stop.is_set() and now - self._stop_at > STOP_GRACE_S:
                # A source blocked in a read (a stalled stream) cannot see the stop flag;
                # give up on draining so the process still ends in time.
                log.warning("pipeline did not drain in %.1f s; stopping anyway", STOP_GRACE_S)
                break
            frames = stats.counter("frames")
            if frames != last_frames:
                last_frames, last_progress = frames, now
            healthy = now - last_progress < stall or stats.gauge("source") == "down"
            if notifier.watchdog_interval and now >= next_ping and healthy:
                notifier.watchdog()
                next_ping = now + notifier.watchdog_interval
            if now >= next_stats:
                line = stats.line()
                log.info("%s", line)
                notifier.status(line)
                next_stats = now + every
            if now >= next_status:
                p.publish_status(self.status())
                next_status = now + status_every
        notifier.stopping()
        result = p.join(timeout=0.4)
        if isinstance(p.on_frame, VideoAnnotator):
            p.on_frame.close()
        log.info("%s", stats.line())
        log.info("stopped: %d frames, %d events, %d dropped", result.frames, result.events,
                 result.dropped)
        notifier.close()
        return result

    def status(self) -> dict:
        """The runtime state sinks publish (e.g. MQTT ``state``)."""
        snap = self.pipeline.stats.snapshot()
        gauges = snap["gauges"]
        return {"faces": gauges.get("faces", 0), "dominant": gauges.get("dominant"),
                "fps": snap["fps"],
                "source": gauges.get("source", "ok"),
                "dropped": gauges.get("dropped", 0),
                "events": snap["counters"].get("events", 0)}
