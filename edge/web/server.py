"""Serving the web page: waitress in its own threads, started and stopped with the device.

The HTTP threads only read what the pipeline already keeps (:class:`LiveState`,
:class:`~edge.stats.Stats`); photo uploads use their own detector and classifier, so a
request never waits on, or slows, the pipeline's workers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from waitress.server import create_server

from edge.config import ConfigError, WebConfig
from edge.config.secrets import read_secret
from edge.model import ModelCard
from edge.stats import Stats
from edge.web.app import WebParts, create_app
from edge.web.live import LiveState
from edge.web.metrics import DeviceCollector, make_registry

log = logging.getLogger(__name__)

#: HTTP threads: each open live view or event stream holds one, up to
#: edge.web.app.MAX_STREAMS of them; the rest always serve the API and /metrics.
THREADS = 16

#: Shortest token accepted: long enough that guessing it is hopeless.
MIN_TOKEN = 12


def read_token(cfg: WebConfig) -> str | None:
    """The auth token from ``auth_token_file`` or ``auth_token_env``; ``None`` if neither.

    Raises:
        ConfigError: the file or variable is missing or empty.
    """
    token = read_secret("web.auth_token", cfg.auth_token_file, cfg.auth_token_env)
    if token is not None and len(token) < MIN_TOKEN:
        key = "auth_token_file" if cfg.auth_token_file else "auth_token_env"
        raise ConfigError(f"web.{key}: the token has {len(token)} characters; use at least "
                          f"{MIN_TOKEN} (e.g. python -c 'import secrets; "
                          "print(secrets.token_urlsafe(24))')")
    return token


class WebServer:
    """The running server; :meth:`close` stops it (and ends open streams).

    Raises:
        ConfigError: the token cannot be read, or the address cannot be bound.
    """

    def __init__(self, cfg: WebConfig, device: str, stats: Stats, live: LiveState,
                 card: ModelCard, predict: Callable[[np.ndarray], list[dict]],
                 mqtt: Any | None = None) -> None:
        self.live = live
        registry = make_registry(DeviceCollector(stats, live, card, mqtt))
        parts = WebParts(cfg, live, card, registry, predict, read_token(cfg), device, stats,
                         mqtt)
        try:
            self._server = create_server(
                create_app(parts), host=cfg.bind, port=cfg.port, threads=THREADS,
                ident="emotion-edge",
                # A body well above the upload limit is refused by its Content-Length
                # before a byte of it is buffered (one just above gets the app's JSON 413).
                max_request_body_size=2 * cfg.upload_max_bytes + 65_536,
                channel_timeout=30, connection_limit=200, cleanup_interval=5)
        except OSError as exc:
            raise ConfigError(f"web.port: cannot listen on {cfg.bind}:{cfg.port} "
                              f"({exc.strerror})") from None
        self.port = int(self._server.effective_port)
        self.url = f"http://{cfg.bind}:{self.port}/"
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        log.info("web page on %s%s", self.url,
                 " (token required)" if parts.token else "")

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed while serving: how close() stops it
            self._server.run()

    def close(self) -> None:
        """Stop serving: end the event and video streams, close the socket."""
        self.live.close()
        self._server.close()
        self._thread.join(2.0)
