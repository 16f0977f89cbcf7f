"""The MQTT sink's broker, before and around a connection: the password it presents, and
why a connection fails, said in words a user can act on."""

from __future__ import annotations

import socket

from edge.config import MqttSinkConfig
from edge.config.secrets import read_secret


def read_password(cfg: MqttSinkConfig) -> str | None:
    """The broker password from ``password_file`` or ``password_env`` (never from YAML)."""
    return read_secret("sinks.mqtt.password", cfg.password_file, cfg.password_env)


def connect_failure(cfg: MqttSinkConfig, timeout_s: float = 2.0) -> str:
    """Why a connection to the broker fails, found by one plain TCP connect: the name, the
    port, the route, or (when TCP gets through) the TLS handshake; with the fix."""
    where = f"check sinks.mqtt.host and port ({cfg.host}:{cfg.port})"
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout=timeout_s):
            pass
    except socket.gaierror:
        return f"the name {cfg.host!r} does not resolve ({where})"
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on port {cfg.port} there ({where})"
    except TimeoutError:
        return f"no answer in {timeout_s:g} s: the host is down or a firewall drops it ({where})"
    except OSError as exc:
        return f"{exc.strerror or exc} ({where})"
    if cfg.tls.enabled:
        return ("TCP connects but the TLS handshake fails: check sinks.mqtt.tls (CA, "
                "certificate) and that the port is the broker's TLS one")
    return "TCP connects but the connection then fails: check the port is the broker's"
