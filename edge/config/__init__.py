"""The device configuration: typed, frozen dataclasses, loaded and validated in one place.

``load(path, overrides)`` reads the YAML file, applies dotted-key overrides (from the CLI),
and returns a :class:`Config`; anything wrong raises one :class:`ConfigError` naming the
key path, the value and what is allowed, e.g. ``source.fps: must be > 0, got -3``.

- :mod:`edge.config.checks`: the error, the declared ranges and the string checks;
- :mod:`edge.config.sections`: source, detector, motion, model, tracking, pipeline;
- :mod:`edge.config.outputs`: the sinks and the web server;
- :mod:`edge.config.loader`: the whole :class:`Config`, ``load`` and path resolution.

Every public name is importable from ``edge.config`` itself.
"""

from edge.config.checks import MAX_INT, ConfigError, show
from edge.config.loader import PATH_KEYS, Config, build, check_utf8_path, load, shipped
from edge.config.outputs import (
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
from edge.config.sections import (
    DetectorConfig,
    ModelConfig,
    MotionConfig,
    PipelineConfig,
    QualityConfig,
    SourceConfig,
    TrackingConfig,
    camera_index,
    is_glob,
    is_stream,
)

__all__ = [
    "MAX_INT",
    "PATH_KEYS",
    "Backoff",
    "Config",
    "ConfigError",
    "DetectorConfig",
    "LogSinkConfig",
    "ModelConfig",
    "MotionConfig",
    "MqttSinkConfig",
    "MqttTlsConfig",
    "PipelineConfig",
    "QualityConfig",
    "SinksConfig",
    "SourceConfig",
    "StdoutSinkConfig",
    "TrackingConfig",
    "WebConfig",
    "build",
    "camera_index",
    "check_utf8_path",
    "is_glob",
    "is_loopback",
    "is_stream",
    "load",
    "shipped",
    "show",
    "sink_names",
]
