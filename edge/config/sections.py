"""The device's own sections of the configuration: source, detector, motion, model,
tracking and pipeline (the outputs are in :mod:`edge.config.outputs`).

Each number's allowed range is declared on its field (:func:`~edge.config.checks.ranged`,
:func:`~edge.config.checks.positive`, :func:`~edge.config.checks.non_negative`) and checked
by the loader; ``_validate`` holds only the rules that tie two fields together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from edge.config.checks import DAY_S, HOUR_S, ConfigError, non_negative, positive, ranged
from edge.config.outputs import Backoff


def camera_index(uri: str | int) -> int | None:
    """The camera index ``uri`` names (``2`` or ``"2"``), or ``None`` for anything else (a
    file, a folder, a glob, a URL). Only ASCII digits: ``int()`` also reads other
    scripts' digits, which no one means as a camera."""
    if isinstance(uri, int):
        return uri
    if uri.isascii() and uri.isdigit() and len(uri) <= 9:
        return int(uri)
    return None


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # an unclosed IPv6 bracket, say
        return False


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from."""

    kind: Literal["auto", "opencv", "picamera2", "images"] = "auto"
    uri: str | int = 0
    width: int = positive(640, 8192)
    height: int = positive(480, 8192)
    fps: float = positive(30.0, 1000)
    loop: bool = False
    pace: Literal["auto", "on", "off"] = "auto"
    queue_size: int = positive(4, 1000)
    realtime: bool | None = None
    stall_timeout_s: float = positive(5.0, HOUR_S)
    reconnect: Backoff = field(default_factory=Backoff)

    def _validate(self, at: str) -> None:
        # OpenCV's V4L2 code crashes the process on a negative index rather than failing.
        index = camera_index(self.uri)
        if (index is not None and not 0 <= index <= 63) or (
                isinstance(self.uri, str) and self.uri.isdigit() and index is None):
            raise ConfigError(f"{at}.uri: a camera index must be in 0..63 (/dev/video<N>), "
                              f"got {str(self.uri)[:20]!r}")
        if isinstance(self.uri, str) and not self.uri.strip():
            raise ConfigError(f"{at}.uri: must not be empty; give a camera index, a video "
                              "or image file, a folder, a glob or a stream URL")
        if isinstance(self.uri, str) and "://" in self.uri and not _has_host(self.uri):
            raise ConfigError(f"{at}.uri: {self.uri[:80]!r} names no host; give the stream's "
                              "address, e.g. rtsp://camera.local:554/stream")


@dataclass(frozen=True)
class DetectorConfig:
    """Face detection: OpenCV's Haar cascade, or YuNet (a learned detector)."""

    kind: Literal["haar", "yunet"] = "haar"
    cascade: str = "default"
    model: str = "models/yunet/face_detection_yunet_2026may.onnx"
    score_threshold: float = ranged(0.6, 0.05, 0.99)
    nms_threshold: float = ranged(0.3, 0.05, 0.95)
    pass_every: int = positive(2, 30)
    level_eyes: bool = False
    detect_width: int = ranged(0, 0, 4096, unit="pixels", note="0: as min_size needs")
    scale_factor: float = ranged(1.1, 1.01, 2.0)
    min_neighbors: int = positive(6, 100)
    min_size: int = positive(48, 4096)
    margin: float = ranged(0.15, 0.0, 1.0)
    equalize: bool = False
    full_every: int = positive(5, 1000)
    region_margin: float = ranged(0.5, 0.0, 3.0)

    def _validate(self, at: str) -> None:
        if 0 < self.detect_width < 80:
            raise ConfigError(f"{at}.detect_width: must be 0 (as min_size needs) or in "
                              f"80..4096 pixels, got {self.detect_width}")


@dataclass(frozen=True)
class MotionConfig:
    """Motion-first detection (:mod:`edge.vision.motion`, :mod:`edge.vision.schedule`)."""

    enabled: bool = True
    width: int = ranged(96, 32, 640, unit="pixels")
    threshold: float = ranged(16.0, 1.0, 255.0, unit="gray levels")
    min_area: int = positive(3, 10_000)
    max_share: float = ranged(0.25, 0.0, 1.0, lo_open=True)
    safety_every: int = non_negative(30, 10_000)
    safety_slices: int = positive(4, 16)
    search_every: int = positive(3, 1000)
    still_check_every: int = positive(1, 10_000)
    classify_every: int = positive(2, 1000)

    def _validate(self, at: str) -> None:
        if self.safety_every and self.safety_slices > self.safety_every:
            raise ConfigError(f"{at}.safety_slices: must be at most safety_every "
                              f"({self.safety_every}), got {self.safety_slices}")


@dataclass(frozen=True)
class ModelConfig:
    """The classifier model."""

    path: str = "models/emotion_ferplus_int8.tflite"
    card: str | None = None
    threads: int = positive(1, 64)
    runtime: Literal["auto", "litert", "tflite_runtime", "tensorflow"] = "auto"

    def _validate(self, at: str) -> None:
        if self.path.lower().endswith((".keras", ".h5")):
            raise ConfigError(f"{at}.path: {self.path} is a Keras model, which the device "
                              "does not run: convert it with python -m convert.quantize "
                              "--model it, and give the .tflite it writes")


@dataclass(frozen=True)
class QualityConfig:
    """Which crops are worth classifying (:mod:`edge.vision.quality`): a face whose crop
    fails is tracked and counted, and not reported with an emotion until one passes."""

    min_face: int = non_negative(36, 4096)
    min_sharpness: float = non_negative(100.0, 100_000.0)
    max_turn: float = ranged(0.5, 0.0, 10.0, lo_open=True)


@dataclass(frozen=True)
class TrackingConfig:
    """Face identity across frames and temporal smoothing of the emotion."""

    iou_threshold: float = ranged(0.3, 0.0, 1.0, lo_open=True, hi_open=True)
    max_missed: int = non_negative(10, 10_000)
    min_hits: int = positive(3, 10_000)
    smoothing: float = ranged(0.3, 0.0, 1.0, lo_open=True, note="1 = no smoothing")
    change_frames: int = positive(5, 10_000)
    change_lead: float = ranged(0.1, 0.0, 1.0, hi_open=True,
                                note="0 = the winner alone decides")
    summary_every_s: float = non_negative(0.0, DAY_S)


@dataclass(frozen=True)
class PipelineConfig:
    """Threads, limits and reporting."""

    workers: int = ranged(2, 1, 16)
    opencv_threads: int = non_negative(0, 64)
    max_frames: int = non_negative(0)
    stats_every_s: float = non_negative(10.0, DAY_S)
    annotate_video: str | None = None
