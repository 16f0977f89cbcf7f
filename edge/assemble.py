"""The one place that builds the device from a config.

``python -m edge``, ``edge.bench``, ``edge.predict`` and any other front end call these,
so the same config gives the same detector, classifier (with its card), tracker, sinks
and pipeline everywhere. Anything the user must fix raises one of
:data:`STARTUP_ERRORS` (exit code 2), with one line naming the key or file.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edge.annotate import VideoAnnotator
from edge.capture.image_files import IMAGE_SUFFIXES, ImageError, read_image
from edge.capture.sources import FrameSource, local_path, make_source, video_fps
from edge.config import Config, ConfigError, sink_names
from edge.frames import Frame
from edge.model import EmotionClassifier, ModelCard, ModelError, card_path_for
from edge.runtime.pipeline import Pipeline
from edge.runtime.settings import PipelineSettings
from edge.sinks import Sink
from edge.stats import Stats
from edge.vision.boxes import Box
from edge.vision.faces import DetectorError, FaceDetector, finest_step
from edge.vision.passes import PassSchedule
from edge.vision.photo_labels import predict_image
from edge.vision.schedule import DetectionSchedule
from edge.vision.tracking import Tracker
from edge.vision.yunet import YuNetDetector, input_size

log = logging.getLogger(__name__)

#: Errors that mean "fix the config or the files" (exit code 2), not a runtime failure.
STARTUP_ERRORS = (ConfigError, ModelError, DetectorError)


def build_sinks(cfg: Config) -> list[Sink]:
    """The enabled sinks (``edge.sinks.<name>.from_config``), in config order.

    Raises:
        ConfigError: no sink is enabled, or one cannot start (e.g. an unwritable log).
    """
    names = cfg.sinks.enabled()
    if not names:
        raise ConfigError("sinks: no sink is enabled; enable "
                          + " or ".join(f"sinks.{n}" for n in sink_names()) + " (or pass --sink)")
    return [importlib.import_module(f"edge.sinks.{name}").from_config(cfg) for name in names]


def load_card(cfg: Config) -> ModelCard:
    """The model's card: ``model.card`` when set, else the ``.json`` next to the model."""
    m = cfg.model
    if not Path(m.path).is_file():
        raise ModelError(f"model.path: {m.path}: model file not found")
    return ModelCard.load(m.card) if m.card else ModelCard.load(card_path_for(m.path))


def build_classifiers(cfg: Config, count: int) -> list[EmotionClassifier]:
    """``count`` classifiers on the configured model (one interpreter per worker)."""
    card = load_card(cfg)
    m = cfg.model
    classifiers = [EmotionClassifier(m.path, card, threads=m.threads, runtime=m.runtime)
                   for _ in range(count)]
    log.info("%s, %d thread(s) each, %d interpreter(s)", classifiers[0].describe(), m.threads,
             count)
    return classifiers


Detector = FaceDetector | YuNetDetector


def build_detector(cfg: Config) -> Detector:
    """The configured face detector, Haar or YuNet (one per worker thread).

    Raises:
        DetectorError: its cascade or model file is missing or not one.
    """
    if cfg.detector.kind == "yunet":
        return YuNetDetector(cfg.detector)
    return FaceDetector(cfg.detector)


def describe_detector(cfg: Config) -> str:
    """The detector in a few words, for the startup log, the bench and ``/api/state``."""
    d = cfg.detector
    if d.kind == "yunet":
        return (f"yunet ({Path(d.model).name}, score >= {d.score_threshold}, "
                f"min_size {d.min_size})")
    return f"haar ({d.cascade}, min_size {d.min_size})"


def build_tracker(cfg: Config, classifier: EmotionClassifier) -> Tracker:
    """The tracker that turns detections into events, labelled as ``classifier``'s card."""
    return Tracker(cfg.tracking, classifier.labels, cfg.device, classifier.card.id)


def build_source(cfg: Config) -> FrameSource:
    """The configured frame source (not opened yet).

    Raises:
        ConfigError: a local file or folder that does not exist.
    """
    src = cfg.source
    if demo_playback(cfg):
        src = dataclasses.replace(src, loop=True)
    path = local_path(src.uri)
    if src.kind != "picamera2" and path is not None:
        if not path.exists():
            raise ConfigError(f"source.uri: {src.uri}: no such file or folder")
        if path.is_file():
            check_input_file(path)
    # Colour is kept only for what shows pixels: the annotated video, the web preview.
    keep_color = (cfg.pipeline.annotate_video is not None
                  or (cfg.web.enabled and cfg.web.preview))
    d = cfg.detector
    lores = (input_size(cfg.source.width, cfg.source.height, d.min_size, d.detect_width)[0]
             if d.kind == "yunet" else
             cfg.source.width // finest_step(cfg.source.width, d.min_size, d.detect_width))
    return make_source(src, lores, keep_color=keep_color)


def demo_playback(cfg: Config) -> bool:
    """Whether a video file plays as a demo a person watches: at its own frame rate and
    in a loop (``source.pace: auto`` with the web page on, or ``on``)."""
    path = local_path(cfg.source.uri)
    if cfg.source.kind == "picamera2" or path is None or not path.is_file():
        return False
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    return cfg.source.pace == "on" or (cfg.source.pace == "auto" and cfg.web.enabled)


def playback_rate(cfg: Config) -> float | None:
    """The rate a demo plays its video file at (:func:`demo_playback`): the file's own."""
    if not demo_playback(cfg):
        return None
    return video_fps(str(cfg.source.uri)) or cfg.source.fps


def check_input_file(path: Path) -> None:
    """Refuse, at start-up, a single image or video file that cannot be decoded.

    Raises:
        ConfigError: an unreadable, corrupt or oversized image, or a video with no frame.
    """
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            read_image(path)
        except ImageError as exc:
            raise ConfigError(f"source.uri: {exc}") from None
        return
    capture = cv2.VideoCapture(str(path))
    try:
        readable = capture.isOpened() and capture.read()[0]
    finally:
        capture.release()
    if not readable:
        raise ConfigError(f"source.uri: {path}: not a readable video (corrupt, or a format "
                          "this OpenCV cannot decode)")


def opencv_threads(cfg: Config, workers: int) -> int:
    """Threads OpenCV may use inside one call (``pipeline.opencv_threads``; 0: automatic).

    Each worker already runs on its own core; if OpenCV also spread every cascade search
    over all cores, the workers' searches would queue behind each other's threads. So by
    default OpenCV gets the cores the workers leave free, and at least one.
    """
    if cfg.pipeline.opencv_threads:
        return cfg.pipeline.opencv_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def pipeline_settings(cfg: Config, rate: float | None = None) -> PipelineSettings:
    """The pipeline's settings from the config (``rate`` paces a file as a camera)."""
    return PipelineSettings(
        margin=cfg.detector.margin, queue_size=cfg.source.queue_size,
        max_frames=cfg.pipeline.max_frames, drop_oldest=cfg.source.realtime, rate=rate,
        reconnect=(cfg.source.reconnect.initial_s, cfg.source.reconnect.max_s),
        quality=cfg.quality,
        status_every_s=(cfg.sinks.mqtt.state_every_s if cfg.sinks.mqtt.enabled
                        else cfg.pipeline.stats_every_s))


def build_schedule(cfg: Config, stats: Stats) -> DetectionSchedule | PassSchedule:
    """Where the detector looks in each frame, timing into ``stats``: one pass per frame
    for YuNet; motion first or periodic for the cascade."""
    if cfg.detector.kind == "yunet":
        return PassSchedule(stats, cfg.detector.pass_every, cfg.motion.classify_every,
                            cfg.detector.level_eyes)
    return DetectionSchedule(cfg.detector.full_every, cfg.detector.region_margin, stats,
                             cfg.motion, cfg.detector.min_size)


#: Containers the annotated video can be written as (OpenCV's mp4v codec).
ANNOTATED_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")


def check_video_path(path: str) -> None:
    """Refuse, at start-up, an annotated-video path that could not be written.

    Raises:
        ConfigError: no video suffix, or a folder that cannot be created or written.
    """
    p = Path(path)
    if p.suffix.lower() not in ANNOTATED_VIDEO_SUFFIXES:
        raise ConfigError(f"pipeline.annotate_video: {path}: name a video file ending in "
                          f"{', '.join(ANNOTATED_VIDEO_SUFFIXES)}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        probe = p.parent / f".{p.name}.write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"pipeline.annotate_video: {path}: cannot write there "
                          f"({exc.strerror})") from None


@dataclass
class Device:
    """A built device: the pipeline and what its owner must close after it has run."""

    cfg: Config
    pipeline: Pipeline
    annotator: VideoAnnotator | None = None
    web: Any | None = None  # edge.web.server.WebServer, when web.enabled

    def close(self) -> None:
        """Release what the pipeline does not own (the annotated video, the web server)."""
        if self.annotator is not None:
            self.annotator.close()
        if self.web is not None:
            self.web.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_device(cfg: Config, *, source: FrameSource | None = None,
                 sinks: list[Sink] | None = None,
                 classifiers: list[EmotionClassifier] | None = None,
                 stats: Stats | None = None, rate: float | None = None,
                 on_frame: Callable[[Frame, list[Box], Tracker], None] | None = None
                 ) -> Device:
    """Source, detectors, classifiers, tracker, sinks and pipeline from the config.

    Args:
        cfg: the configuration.
        source: a source to use instead of the configured one (a benchmark's file).
        sinks: sinks to use instead of the configured ones.
        classifiers: loaded classifiers to reuse, one per worker thread (a benchmark keeps
            its warmed-up interpreters); by default ``pipeline.workers`` new ones.
        stats: where the pipeline records its figures (a new one by default).
        rate: replay a file at this many frames per second, as a camera would deliver it.
        on_frame: also called with each frame in order, its boxes and the tracker (a
            benchmark counting the faces found); must be quick.

    Raises:
        ConfigError, ModelError, DetectorError: something the user has to fix.
    """
    if source is None:
        if cfg.web.enabled and not cfg.web.preview and demo_playback(cfg):
            # A recorded clip shown on the page is a demo: show it. A camera's pixels
            # stay private unless web.preview says otherwise.
            log.info("web: showing the video of %s on the page (a file, not a camera)",
                     cfg.source.uri)
            cfg = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, preview=True))
        source = build_source(cfg)
        if rate is None:
            rate = playback_rate(cfg)
    if classifiers is None:
        classifiers = build_classifiers(cfg, cfg.pipeline.workers)
    cv2.setNumThreads(opencv_threads(cfg, len(classifiers)))
    pairs = [(build_detector(cfg), c) for c in classifiers]
    tracker = build_tracker(cfg, classifiers[0])
    stats = stats or Stats()
    stats.set("detector", describe_detector(cfg))
    annotator = None
    if cfg.pipeline.annotate_video:
        check_video_path(cfg.pipeline.annotate_video)
        # A file's own rate (a 15 fps clip written at 30 would play at double speed).
        annotator = VideoAnnotator(cfg.pipeline.annotate_video,
                                   lambda: getattr(source, "nominal_fps", cfg.source.fps), stats)
    sinks = sinks if sinks is not None else build_sinks(cfg)
    _publish_figures(sinks, stats)
    hooks: list[Callable[[Frame, list[Box], Tracker], None]] = [annotator] if annotator else []
    if on_frame is not None:
        hooks.append(on_frame)
    web = None
    if cfg.web.enabled:
        live, web = build_web(cfg, stats, classifiers[0].card)
        sinks = [*sinks, live]
        hooks.append(live)
    pipeline = Pipeline(source, pairs, tracker, sinks, pipeline_settings(cfg, rate),
                        on_frame=_each(hooks), stats=stats,
                        schedule=build_schedule(cfg, stats))
    return Device(cfg, pipeline, annotator, web)


def _publish_figures(sinks: list[Sink], stats: Stats) -> None:
    """What a sink tells about itself (the MQTT spool), for the web page and /metrics."""
    for sink in sinks:
        if callable(figures := getattr(sink, "figures", None)):
            stats.publish(sink.name, figures)


def build_web(cfg: Config, stats: Stats, card: ModelCard) -> tuple[Any, Any]:
    """The web page's live state (a sink and a frame hook) and its running server.

    Raises:
        ConfigError: the web extra is not installed, the token cannot be read, or the
            address cannot be bound.
    """
    try:
        from edge.web.live import LiveState
        from edge.web.server import WebServer
    except ImportError as exc:
        raise ConfigError(f"web.enabled: the web page needs the web extra ({exc.name} is "
                          "missing): pip install '.[web]'") from None
    detector, (classifier,) = build_detector(cfg), build_classifiers(cfg, 1)
    live = LiveState(card.labels, cfg.web.events_kept, cfg.web.preview)
    server = WebServer(cfg.web, cfg.device, stats, live, card,
                       lambda image: predict_image(image, detector, classifier,
                                                   cfg.detector.margin))
    return live, server


def _each(hooks: list[Callable[[Frame, list[Box], Tracker], None]]
          ) -> Callable[[Frame, list[Box], Tracker], None] | None:
    """One ``on_frame`` hook calling each of ``hooks`` in turn (``None`` for none)."""
    if len(hooks) <= 1:
        return hooks[0] if hooks else None

    def every(frame: Frame, boxes: list[Box], tracker: Tracker) -> None:
        for hook in hooks:
            hook(frame, boxes, tracker)
    return every
