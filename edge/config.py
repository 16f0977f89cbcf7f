"""The device configuration: typed, frozen dataclasses, loaded and validated in one place.

``load(path, overrides)`` reads the YAML file, applies dotted-key overrides (from the CLI),
and returns a :class:`Config`; anything wrong raises one :class:`ConfigError` naming the
key path, the value and what is allowed, e.g. ``source.fps: must be > 0, got -3``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from edge.checks import (
    DAY_S,
    HOUR_S,
    MAX_INT,
    ConfigError,
    checked_string,
    non_negative,
    positive,
    show,
)
from edge.config_outputs import (
    Backoff,
    LogSinkConfig,
    MqttSinkConfig,
    MqttTlsConfig,
    SinksConfig,
    StdoutSinkConfig,
    WebConfig,
    is_loopback,
    sink_names,
)

#: The whole config API lives here; the output sections are defined in edge.config_outputs.
__all__ = [
    "MAX_INT", "PATH_KEYS", "Backoff", "Config", "ConfigError", "DetectorConfig",
    "LogSinkConfig", "ModelConfig", "MotionConfig", "MqttSinkConfig", "MqttTlsConfig",
    "PipelineConfig", "SinksConfig", "SourceConfig", "StdoutSinkConfig", "TrackingConfig",
    "WebConfig", "build", "is_loopback", "load", "shipped", "show", "sink_names",
]


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from."""

    kind: Literal["auto", "opencv", "picamera2", "images"] = "auto"
    uri: str | int = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = False
    queue_size: int = 4
    realtime: bool | None = None
    stall_timeout_s: float = 5.0
    reconnect: Backoff = field(default_factory=Backoff)

    def _validate(self, at: str) -> None:
        positive(self.width, f"{at}.width", 8192)
        positive(self.height, f"{at}.height", 8192)
        positive(self.fps, f"{at}.fps", 1000)
        positive(self.queue_size, f"{at}.queue_size", 1000)
        positive(self.stall_timeout_s, f"{at}.stall_timeout_s", HOUR_S)


@dataclass(frozen=True)
class DetectorConfig:
    """Haar-cascade face detection."""

    cascade: str = "default"
    detect_width: int = 320
    scale_factor: float = 1.1
    min_neighbors: int = 6
    min_size: int = 48
    margin: float = 0.15
    equalize: bool = False
    full_every: int = 5
    region_margin: float = 0.5

    def _validate(self, at: str) -> None:
        if not 80 <= self.detect_width <= 4096:
            raise ConfigError(f"{at}.detect_width: must be in 80..4096 pixels, "
                              f"got {self.detect_width}")
        if not 1.01 <= self.scale_factor <= 2.0:
            raise ConfigError(f"{at}.scale_factor: must be in [1.01, 2.0], "
                              f"got {self.scale_factor}")
        positive(self.min_neighbors, f"{at}.min_neighbors", 100)
        positive(self.min_size, f"{at}.min_size", 4096)
        if not 0.0 <= self.margin <= 1.0:
            raise ConfigError(f"{at}.margin: must be in [0, 1], got {self.margin}")
        positive(self.full_every, f"{at}.full_every", 1000)
        if not 0.0 <= self.region_margin <= 3.0:
            raise ConfigError(f"{at}.region_margin: must be in [0, 3], got {self.region_margin}")


@dataclass(frozen=True)
class MotionConfig:
    """Motion-first detection (:mod:`edge.motion`, :mod:`edge.schedule`)."""

    enabled: bool = True
    width: int = 96
    threshold: float = 16.0
    min_area: int = 3
    max_share: float = 0.25
    safety_every: int = 30
    safety_slices: int = 4
    search_every: int = 3
    still_check_every: int = 1
    classify_every: int = 2

    def _validate(self, at: str) -> None:
        if not 32 <= self.width <= 640:
            raise ConfigError(f"{at}.width: must be in 32..640 pixels, got {self.width}")
        if not 1.0 <= self.threshold <= 255.0:
            raise ConfigError(f"{at}.threshold: must be in [1, 255] gray levels, "
                              f"got {self.threshold}")
        positive(self.min_area, f"{at}.min_area", 10_000)
        if not 0.0 < self.max_share <= 1.0:
            raise ConfigError(f"{at}.max_share: must be in (0, 1], got {self.max_share}")
        non_negative(self.safety_every, f"{at}.safety_every", 10_000)
        positive(self.safety_slices, f"{at}.safety_slices", 16)
        if self.safety_every and self.safety_slices > self.safety_every:
            raise ConfigError(f"{at}.safety_slices: must be at most safety_every "
                              f"({self.safety_every}), got {self.safety_slices}")
        positive(self.search_every, f"{at}.search_every", 1000)
        positive(self.still_check_every, f"{at}.still_check_every", 10_000)
        positive(self.classify_every, f"{at}.classify_every", 1000)


@dataclass(frozen=True)
class ModelConfig:
    """The classifier model."""

    path: str = "models/emotion_ferplus_int8.tflite"
    card: str | None = None
    threads: int = 1
    runtime: Literal["auto", "litert", "tflite_runtime", "tensorflow"] = "auto"

    def _validate(self, at: str) -> None:
        positive(self.threads, f"{at}.threads", 64)


@dataclass(frozen=True)
class TrackingConfig:
    """Face identity across frames and temporal smoothing of the emotion."""

    iou_threshold: float = 0.3
    max_missed: int = 10
    min_hits: int = 3
    smoothing: float = 0.3
    change_frames: int = 5
    summary_every_s: float = 0.0

    def _validate(self, at: str) -> None:
        if not 0.0 < self.iou_threshold < 1.0:
            raise ConfigError(f"{at}.iou_threshold: must be in (0, 1), got {self.iou_threshold}")
        non_negative(self.max_missed, f"{at}.max_missed", 10_000)
        positive(self.min_hits, f"{at}.min_hits", 10_000)
        if not 0.0 < self.smoothing <= 1.0:
            raise ConfigError(f"{at}.smoothing: must be in (0, 1] (1 = no smoothing), "
                              f"got {self.smoothing}")
        positive(self.change_frames, f"{at}.change_frames", 10_000)
        non_negative(self.summary_every_s, f"{at}.summary_every_s", DAY_S)


@dataclass(frozen=True)
class PipelineConfig:
    """Threads, limits and reporting."""

    workers: int = 2
    opencv_threads: int = 0
    max_frames: int = 0
    stats_every_s: float = 10.0
    annotate_video: str | None = None

    def _validate(self, at: str) -> None:
        if not 1 <= self.workers <= 16:
            raise ConfigError(f"{at}.workers: must be in 1..16, got {self.workers}")
        non_negative(self.opencv_threads, f"{at}.opencv_threads", 64)
        non_negative(self.max_frames, f"{at}.max_frames")
        non_negative(self.stats_every_s, f"{at}.stats_every_s", DAY_S)


@dataclass(frozen=True)
class Config:
    """The whole device configuration."""

    device: str = "edge-1"
    state_dir: str = "state"
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    web: WebConfig = field(default_factory=WebConfig)

    def _validate(self, at: str) -> None:
        if not self.device or any(c in self.device for c in "/#+ "):
            raise ConfigError(f"device: must be a non-empty name without '/', '#', '+' or "
                              f"spaces (it is an MQTT topic level), got {self.device!r}")


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load, merge and validate the configuration.

    Args:
        path: a YAML file; ``None`` uses the built-in defaults only.
        overrides: dotted keys to values, e.g. ``{"source.uri": "clip.mp4"}``; applied
            after the file.

    Raises:
        ConfigError: the file is unreadable or a value is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); save it as "
                              "UTF-8") from None
        except RecursionError:
            raise ConfigError(f"{p}: nested too deeply to be a config file") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: not readable YAML ({show(str(exc), 200)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of keys, "
                              f"got {type(loaded).__name__}")
        data = loaded or {}
        _resolve_paths(data, p.parent)
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # an empty section in the file is an empty mapping
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: '{part}' is not a section")
        node[parts[-1]] = value
    cfg = build(Config, data, "")
    return _with_shipped_defaults(cfg, data)


#: Keys whose values are files or folders. Relative ones in a config file are relative to
#: that file's folder, so ``--config /etc/x/config.yaml`` works from anywhere; on the
#: command line they are relative to the current directory, as with every CLI.
PATH_KEYS: tuple[str, ...] = (
    "state_dir", "source.uri", "model.path", "model.card", "sinks.log.path",
    "sinks.mqtt.password_file", "sinks.mqtt.tls.ca_file", "sinks.mqtt.tls.cert_file",
    "sinks.mqtt.tls.key_file", "pipeline.annotate_video", "detector.cascade",
    "web.auth_token_file")

#: Cascade names that are not paths (see ``edge.faces.cascade_path``).
_CASCADE_NAMES = ("default", "alt2", "alt", "alt_tree", "lbp")


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Make the file's relative paths relative to ``folder`` (in place)."""
    for key in PATH_KEYS:
        *sections, name = key.split(".")
        node: Any = data
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(name), str):
            continue
        value = os.path.expandvars(node[name])
        if (not value or "://" in value or value.isdigit() or os.path.isabs(value)
                or (key == "detector.cascade" and value in _CASCADE_NAMES)):
            continue
        node[name] = str(folder / value)


def shipped(relative: str) -> Path:
    """A file that ships with the package (the model, the sample clip), wherever we run.

    Looked up in the current directory (a clone), next to the ``edge`` package (an
    editable install), and in ``<prefix>/share/emotion-edge`` (a wheel install's data).
    """
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here, Path(sys.prefix) / "share" / "emotion-edge"):
        if (base / relative).exists():
            return base / relative
    return Path(relative)


def _with_shipped_defaults(cfg: Config, data: dict[str, Any]) -> Config:
    """``cfg`` with the default model and sample found wherever the package is installed."""
    def given(section: str, key: str) -> bool:
        return isinstance(data.get(section), dict) and key in data[section]

    model, source = cfg.model, cfg.source
    if not given("model", "path"):
        model = dataclasses.replace(model, path=str(shipped(model.path)))
    if not given("source", "uri") and isinstance(source.uri, str):
        source = dataclasses.replace(source, uri=str(shipped(source.uri)))
    return dataclasses.replace(cfg, model=model, source=source)


def build(cls: type, data: Any, at: str) -> Any:
    """Build dataclass ``cls`` from ``data`` (a mapping), checking every key and type."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{at or 'config'}: must be a mapping, got {show(data)}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - names))
    if unknown:
        raise ConfigError(f"{_join(at, unknown[0])}: unknown key; allowed keys here: "
                          f"{', '.join(sorted(names))}")
    kwargs = {name: _coerce(hints[name], data[name], _join(at, name))
              for name in names if name in data}
    obj = cls(**kwargs)
    validate = getattr(obj, "_validate", None)
    if validate is not None:
        validate(at)
    return obj


def _coerce(hint: Any, value: Any, at: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, at)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{at}: must be one of {', '.join(map(str, allowed))}, "
                              f"got {show(value)}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{at}: must not be empty")
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, at)
            except ConfigError:
                continue
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise ConfigError(f"{at}: must be {names}, got {show(value)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{at}: must be true or false, got {show(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INT:
                raise ConfigError(f"{at}: must be at most {MAX_INT:,}, got {show(value)}")
            return value
        raise ConfigError(f"{at}: must be an integer, got {show(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{at}: must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{at}: must be a number, got {show(value)}")
    if hint is str:
        if isinstance(value, str):
            return checked_string(os.path.expandvars(value) if "$" in value else value, at)
        raise ConfigError(f"{at}: must be a string, got {show(value)}")
    raise ConfigError(f"{at}: unsupported type {hint}")  # a bug in this module, not the YAML


def _type_name(hint: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _join(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


