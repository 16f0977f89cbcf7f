"""Loading the device configuration: a YAML file and the command line's overrides, checked once.

``load(path, overrides)`` reads the YAML file, applies dotted-key overrides (from the CLI),
and returns a :class:`Config`; anything wrong raises one :class:`ConfigError` naming the
key path, the value and what is allowed, e.g. ``source.fps: must be > 0, got -3``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import socket
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from edge.config.checks import MAX_INT, ConfigError, check_ranges, checked_string, show
from edge.config.outputs import SinksConfig, WebConfig
from edge.config.sections import (
    DetectorConfig,
    ModelConfig,
    MotionConfig,
    PipelineConfig,
    QualityConfig,
    SourceConfig,
    TrackingConfig,
    camera_index,
    is_stream,
)

log = logging.getLogger(__name__)


def host_device_name() -> str:
    """This machine's host name as a device name (a topic level: no '/', '#', '+' or
    spaces), so two devices installed the same way do not share one name."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return name.strip("-.") or "edge"


@dataclass(frozen=True)
class Config:
    """The whole device configuration.

    Attributes:
        device: Name of this device: written into every event and used as an MQTT topic
            level (no '/', '#', '+' or spaces). Default: this machine's host name, so
            devices installed from one image each get their own (two devices of one name
            take the broker session from each other). Set it to name the device after its
            room.
        state_dir: Folder for state that must survive restarts (the MQTT spool). The systemd
            unit sets it to /var/lib/emotion-edge.
        source: Where frames come from (edge/capture/).
        detector: Finding faces: OpenCV's Haar cascade or YuNet (edge/vision/faces.py,
            yunet.py, schedule.py).
        motion: Motion-first detection (edge/vision/motion.py, schedule.py).
        model: The emotion model (edge/model.py).
        quality: Crops worth classifying (edge/vision/quality.py).
        tracking: Following each face and deciding its events (edge/vision/tracking.py).
        sinks: Where events go: one module each in edge/sinks/.
        pipeline: The threads that run it all (edge/runtime/).
        web: The device's web page, REST API and metrics (edge/web/).
    """

    device: str = field(default_factory=host_device_name)
    state_dir: str = "state"
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    web: WebConfig = field(default_factory=WebConfig)

    def _validate(self, at: str) -> None:
        if not self.device or any(c in self.device for c in "/#+ "):
            raise ConfigError(f"device: must be a non-empty name without '/', '#', '+' or "
                              f"spaces (it is an MQTT topic level), got {self.device!r}")


def _read_yaml(p: Path) -> dict[str, Any]:
    """The YAML file ``p`` as a mapping, its relative paths made relative to its folder.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML or not a mapping.
    """
    try:
        loaded = yaml.safe_load(_read_config_text(p))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to be a config file") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{p}: not readable YAML: {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not readable YAML ({' '.join(str(exc).split())})") \
            from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # A tagged or dated value PyYAML's constructors cannot build (2026-13-45,
        # !!bool maybe, !!int abc, a 4,400-digit integer).
        raise ConfigError(f"{p}: a value YAML cannot read ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]}); quote it to make it "
                          "text") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, "
                          f"got {type(loaded).__name__}")
    data = loaded or {}
    _resolve_paths(data, p.parent)
    return data


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
        data = _read_yaml(Path(path))
        if overrides:
            # The file as written must be valid on its own: a flag that overrides a key
            # does not excuse a wrong value there (the service may run without the flag).
            build(Config, copy.deepcopy(data), "")
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
    no_source = path is not None and data.get("source") is None
    _refuse_undecodable_paths(data)
    cfg = build(Config, data, "")
    _refuse_special_files(cfg)
    if no_source:
        log.warning("%s: no source given; using camera 0, retried until it opens (set "
                    "source.uri, or --source)", path)
    return _with_shipped_defaults(cfg, data)


#: Largest config file read: a device's config is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20


def _read_config_text(p: Path) -> str:
    """The file's text, refusing what is not a regular file (a FIFO would block, a
    device never end) and anything over :data:`MAX_CONFIG_BYTES`."""
    if p.exists() and not p.is_file():
        raise ConfigError(f"{p}: not a regular file; give the path of a YAML config file")
    with p.open("rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: larger than {MAX_CONFIG_BYTES >> 20} MiB; a config file "
                          "is a few kilobytes of YAML")
    return raw.decode("utf-8")


#: Keys whose values are files or folders. Relative ones in a config file are relative to
#: that file's folder, so ``--config /etc/x/config.yaml`` works from anywhere; on the
#: command line they are relative to the current directory, as with every CLI.
PATH_KEYS: tuple[str, ...] = (
    "state_dir", "source.uri", "model.path", "model.card", "sinks.log.path",
    "sinks.mqtt.password_file", "sinks.mqtt.tls.ca_file", "sinks.mqtt.tls.cert_file",
    "sinks.mqtt.tls.key_file", "pipeline.annotate_video", "detector.cascade",
    "detector.model", "web.auth_token_file")

#: Cascade names that are not paths (see ``edge.vision.faces.cascade_path``).
_CASCADE_NAMES = ("default", "alt2", "alt", "alt_tree", "lbp")


#: Files the device reads or writes whole: a FIFO would block it forever and a device
#: such as /dev/zero never ends, so each must be a regular file (or not exist yet, for
#: what is written).
_REGULAR_FILES = ("model.path", "model.card", "sinks.log.path", "sinks.mqtt.password_file",
                  "sinks.mqtt.tls.ca_file", "sinks.mqtt.tls.cert_file",
                  "sinks.mqtt.tls.key_file", "web.auth_token_file", "pipeline.annotate_video",
                  "detector.model")


def _refuse_special_files(cfg: Config) -> None:
    for key in _REGULAR_FILES:
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part, None)
        if isinstance(value, str) and value and os.path.exists(value) \
                and not os.path.isfile(value):
            raise ConfigError(f"{key}: {value} is not a regular file (a folder, a device or "
                              "a pipe); give a file's path")


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """A YAML syntax error in one line: where (line, column) and what."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    return f"{where}{what or 'syntax error'}"


def _refuse_undecodable_paths(data: dict[str, Any]) -> None:
    """A file name that is not valid UTF-8 crashes OpenCV's file functions (a signal,
    not an error): refuse it here, in one line, before anything opens it."""
    for key, node, name in _path_entries(data):
        check_utf8_path(node[name], key)


def check_utf8_path(value: str, at: str) -> None:
    """Refuse ``value`` (a file name) when it is not UTF-8: OpenCV would crash on it.

    Raises:
        ConfigError: naming ``at`` and the name's bytes.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{at}: {value.encode('utf-8', 'surrogateescape')!r} is not a "
                          "UTF-8 file name, which OpenCV cannot open; rename the file") \
            from None


def _path_entries(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """``(key, section, name)`` of every :data:`PATH_KEYS` entry the YAML gives as text."""
    out = []
    for key in PATH_KEYS:
        *sections, name = key.split(".")
        node: Any = data
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(name), str):
            out.append((key, node, name))
    return out


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Make the file's relative paths relative to ``folder`` (in place)."""
    for key, node, name in _path_entries(data):
        value = os.path.expandvars(node[name])
        if (not value or is_stream(value) or camera_index(value) is not None
                or os.path.isabs(value)
                or (key == "detector.cascade" and value in _CASCADE_NAMES)):
            continue
        node[name] = str(folder / value)


def shipped(relative: str) -> Path:
    """A file that ships with the package (the model, the sample clip), wherever we run.

    Looked up in the current directory (a clone), next to the ``edge`` package (an
    editable install), and in ``<prefix>/share/emotion-edge`` (a wheel install's data).
    """
    here = Path(__file__).resolve().parents[2]  # edge/config/loader.py -> the clone
    for base in (Path.cwd(), here, Path(sys.prefix) / "share" / "emotion-edge"):
        if (base / relative).exists():
            return base / relative
    return Path(relative)


def _with_shipped_defaults(cfg: Config, data: dict[str, Any]) -> Config:
    """``cfg`` with the default model and sample found wherever the package is installed."""
    def given(section: str, key: str) -> bool:
        return isinstance(data.get(section), dict) and key in data[section]

    model, source, detector = cfg.model, cfg.source, cfg.detector
    if not given("model", "path"):
        model = dataclasses.replace(model, path=str(shipped(model.path)))
    if not given("source", "uri") and isinstance(source.uri, str):
        source = dataclasses.replace(source, uri=str(shipped(source.uri)))
    if not given("detector", "model"):
        detector = dataclasses.replace(detector, model=str(shipped(detector.model)))
    return dataclasses.replace(cfg, model=model, source=source, detector=detector)


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
    check_ranges(obj, at)
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
            if isinstance(value, int) and abs(value) > MAX_INT:
                raise ConfigError(f"{at}: must be at most {MAX_INT:,}, got {show(value)}")
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


