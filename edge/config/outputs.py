"""The output side of the device configuration: the event sinks and the web server.

Part of :mod:`edge.config` (which re-exports every name here). Same rules as
:mod:`edge.config.sections`: ranges declared on the fields, cross-field rules in ``_validate``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from edge.config.checks import DAY_S, HOUR_S, ConfigError, non_negative, positive, ranged


@dataclass(frozen=True)
class Backoff:
    """Retry delays: start at ``initial_s``, double each failure, never above ``max_s``.

    Attributes:
        initial_s: Seconds before the first retry.
        max_s: Longest wait between two retries, in seconds (the wait doubles up to it).
    """

    initial_s: float = positive(1.0, HOUR_S)
    max_s: float = positive(30.0, HOUR_S)

    def _validate(self, at: str) -> None:
        if self.max_s < self.initial_s:
            raise ConfigError(f"{at}.max_s: must be >= initial_s ({self.initial_s}), "
                              f"got {self.max_s}")


@dataclass(frozen=True)
class LogSinkConfig:
    """JSON-lines event log with size-based rotation.

    Attributes:
        enabled: Write the event log: JSON lines, one event per line, rotated by size.
        path: The log file.
        max_bytes: Size at which the log is rotated, in bytes.
        backups: Rotated files kept (events.jsonl.1 ... .N).
    """

    enabled: bool = True
    path: str = "events.jsonl"
    max_bytes: int = positive(10_000_000)
    backups: int = non_negative(5, 100)


@dataclass(frozen=True)
class StdoutSinkConfig:
    """Events as JSON lines on standard output.

    Attributes:
        enabled: Events as JSON lines on standard output.
    """

    enabled: bool = False


@dataclass(frozen=True)
class MqttTlsConfig:
    """TLS for the MQTT connection.

    Attributes:
        enabled: Connect with TLS.
        ca_file: CA bundle to verify the broker (empty: the system's).
        cert_file: Client certificate for mutual TLS.
        key_file: Client key for mutual TLS.
        insecure: Skip host name verification (testing only).
    """

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttSinkConfig:
    """Events, state and status over MQTT (QoS 1, spooled on disk while the broker is away).

    Attributes:
        enabled: Publish events to an MQTT broker.
        host: The broker's host name or address.
        port: The broker's port.
        client_id: Empty: emotion-edge-<device>.
        keepalive_s: Seconds between keep-alive pings to the broker.
        topic_prefix: Topics: <topic_prefix>/<device>/event, .../state (retained),
            .../status (retained online/offline, offline as the last will).
        username: User name at the broker (empty: none).
        password_file: A file holding the broker password (the password is never written in
            the config).
        password_env: ... or an environment variable holding it.
        tls: TLS to the broker.
        max_inflight: QoS 1 messages in flight at once; beyond that, events wait in the
            spool.
        replay_s: After a reconnect, publish again the events the broker acknowledged in the
            last N seconds before the last acknowledgement of the connection that was lost:
            a broker killed outright may not have written them to disk yet (Mosquitto
            saves every autosave_interval).
            Consumers drop the duplicates by event id. Keep it above the broker's
            autosave_interval (fleet/mosquitto/fleet.conf: 1). 0: off.
        spool_max_events: Events kept on disk (in state_dir) while the broker is away;
            beyond that the oldest are discarded, counted and logged.
        state_every_s: Seconds between retained state updates.
        reconnect: Waits between attempts to reach the broker while it is away.
        homeassistant_discovery: Publish Home Assistant MQTT discovery for dominant emotion,
            faces in view and fps.
        discovery_prefix: Topic prefix of the Home Assistant discovery messages.
    """

    enabled: bool = False
    host: str = "localhost"
    port: int = ranged(1883, 1, 65535)
    client_id: str | None = None
    keepalive_s: int = positive(60, 65_535)  # MQTT's own limit
    topic_prefix: str = "emotion-edge"
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    tls: MqttTlsConfig = field(default_factory=MqttTlsConfig)
    max_inflight: int = positive(20, 65_535)
    replay_s: float = non_negative(5.0, 3600.0)
    spool_max_events: int = positive(100_000, 100_000_000)
    state_every_s: float = positive(5.0, DAY_S)
    reconnect: Backoff = field(default_factory=lambda: Backoff(1.0, 60.0))
    homeassistant_discovery: bool = False
    discovery_prefix: str = "homeassistant"

    def _validate(self, at: str) -> None:
        if not self.host.strip():
            raise ConfigError(f"{at}.host: must name the broker (a host name or address)")
        if not _host_name_ok(self.host):
            raise ConfigError(f"{at}.host: {self.host!r} is not a host name or address "
                              "(labels of letters, digits and '-', joined by single dots)")
        _check_topic(self.topic_prefix, f"{at}.topic_prefix")
        if self.homeassistant_discovery:
            _check_topic(self.discovery_prefix, f"{at}.discovery_prefix")
        if self.password_file and self.password_env:
            raise ConfigError(f"{at}: set password_file or password_env, not both")


def _check_topic(topic: str, at: str) -> None:
    """Refuse a topic prefix the broker would take but never deliver from: empty, with
    wildcards (subscription-only), or under ``$`` (the broker's own ``$SYS`` tree: a
    publish there is acknowledged, and dropped)."""
    if not topic or "#" in topic or "+" in topic or topic.startswith("$") or "\0" in topic:
        raise ConfigError(f"{at}: must be a non-empty topic without wildcards ('#', '+') "
                          f"that does not start with '$', got {topic!r}")
    if len(topic.encode("utf-8")) > 1024:
        raise ConfigError(f"{at}: must be at most 1024 bytes, got {len(topic.encode())}")


def _host_name_ok(host: str) -> bool:
    """A literal IPv4/IPv6 address or a DNS name whose labels are 1-63 characters; what
    the socket layer would reject later, in the MQTT network thread, is refused here."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and label.isascii() and not label.startswith("-")
        and not label.endswith("-") and all(c.isalnum() or c in "-_" for c in label)
        for label in labels)


@dataclass(frozen=True)
class SinksConfig:
    """Where events go.

    Attributes:
        log: The event log (edge/sinks/log.py).
        stdout: Events on standard output (edge/sinks/stdout.py).
        mqtt: Events to an MQTT broker, spooled on disk while it is away
            (edge/sinks/mqtt.py).
    """

    log: LogSinkConfig = field(default_factory=LogSinkConfig)
    stdout: StdoutSinkConfig = field(default_factory=StdoutSinkConfig)
    mqtt: MqttSinkConfig = field(default_factory=MqttSinkConfig)

    def enabled(self) -> list[str]:
        """Names of the enabled sinks, in the order events are written to them."""
        return [name for name in sink_names() if getattr(self, name).enabled]


def sink_names() -> tuple[str, ...]:
    """Every sink's name: its key under ``sinks``, its module in ``edge.sinks``, its flag."""
    return tuple(f.name for f in dataclasses.fields(SinksConfig))


@dataclass(frozen=True)
class WebConfig:
    """The device's web page, REST API and Prometheus metrics (the ``web`` extra).

    The device's own web page, REST API (/api/...) and Prometheus metrics (/metrics).
    Needs the web extra: pip install ".[web]". Off by default; --web turns it on.

    Attributes:
        enabled: Serve the page, the API and the metrics (also --web).
        bind: Address to listen on. Loopback (127.0.0.1) is reachable from this machine
            only; any other address (0.0.0.0 for every interface) needs an auth token, or
            the service refuses to start.
        port: 0 picks any free port (the address is logged at start-up).
        auth_token_file: A file holding the token clients send (Authorization: Bearer
            <token>, or ?token=<token> once in the browser); never written in the config.
        auth_token_env: ... or an environment variable holding it.
        preview: Serve the camera's pixels (the annotated live view)? Off: the page draws
            the face boxes without pixels. Pixels are never stored, and encoded only while a
            page shows them.
        preview_fps: Frames per second of the live view while someone watches (at most 10).
        upload_max_bytes: Largest photo accepted by the photo page and POST /api/predict, in
            bytes.
        events_kept: Events kept in memory for the page and GET /api/events.
        hosts: Host names the page may be reached by besides the bound address and
            localhost, comma-separated (e.g. "edge-1.local,192.168.1.20"). Requests naming
            any other Host are refused, so a web site cannot reach the device through DNS
            rebinding. Bound to 0.0.0.0 with nothing here, any Host is accepted (the token
            guards the page).
    """

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = ranged(8080, 0, 65535, note="0: any free port")
    auth_token_file: str | None = None
    auth_token_env: str | None = None
    preview: bool = False
    preview_fps: float = positive(5.0, 10)
    upload_max_bytes: int = positive(8_000_000, 100_000_000)
    events_kept: int = positive(1000, 100_000)
    hosts: str = ""

    def _validate(self, at: str) -> None:
        if self.auth_token_file and self.auth_token_env:
            raise ConfigError(f"{at}: set auth_token_file or auth_token_env, not both")
        if not self.bind.strip():
            raise ConfigError(f"{at}.bind: must be an address to listen on (127.0.0.1)")
        if (self.enabled and not is_loopback(self.bind)
                and not (self.auth_token_file or self.auth_token_env)):
            raise ConfigError(f"{at}.bind: {self.bind} is reachable from other machines; "
                              f"set {at}.auth_token_file or {at}.auth_token_env (or bind "
                              "127.0.0.1)")


def is_loopback(address: str) -> bool:
    """Whether ``address`` only accepts connections from this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


