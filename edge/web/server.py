"""Serving the web page: waitress in its own threads, started and stopped with the device.

The HTTP threads only read what the pipeline already keeps (:class:`LiveState`,
:class:`~edge.stats.Stats`); photo uploads use their own detector and classifier, so a
request never waits on, or slows, the pipeline's workers.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable

import numpy as np
from waitress import wasyncore
from waitress.server import create_server

from edge.config import ConfigError, WebConfig
from edge.config.secrets import read_secret
from edge.model import ModelCard
from edge.stats import Stats
from edge.web.admission import admit
from edge.web.app import WebParts, create_app
from edge.web.guard import TokenGuard
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
                 card: ModelCard, predict: Callable[[np.ndarray], list[dict]]) -> None:
        self.live = live
        registry = make_registry(DeviceCollector(stats, live, card))
        guard = TokenGuard(read_token(cfg))
        parts = WebParts(cfg, live, card, registry, predict, guard, device, stats)
        try:
            self._server = create_server(
                create_app(parts), host=cfg.bind, port=cfg.port, threads=THREADS,
                ident="emotion-edge",
                # A body well above the upload limit is refused by its Content-Length
                # before a byte of it is buffered (one just above gets the app's JSON 413).
                max_request_body_size=2 * cfg.upload_max_bytes + 65_536,
                channel_timeout=30, connection_limit=200, cleanup_interval=1,
                # Browsers send a few KB; 200 connections' headers then stay a few MB.
                max_request_header_size=32_768,
                # A client that stops reading a stream makes its thread wait once this
                # much is queued for it, instead of the server buffering it all.
                outbuf_high_watermark=1 << 20)
        except OSError as exc:
            hint = ("; something else listens there: pick another port with web.port or "
                    "--port (0: any free one)" if exc.errno == errno.EADDRINUSE else "")
            raise ConfigError(f"web.port: cannot listen on {cfg.bind}:{cfg.port} "
                              f"({exc.strerror}){hint}") from None
        admit(self._server, guard)
        self.port = int(self._server.effective_port)
        self.url = f"http://{cfg.bind}:{self.port}/"
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        log.info("web page on %s%s", self.url,
                 " (token required)" if guard.token else "")

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # a socket closed under the loop also ends it
            self._server.run()

    def close(self) -> None:
        """Stop serving: end the event and video streams, then close every socket from
        the server's own loop thread, which then returns at once, and stop the HTTP
        threads. (Closing the sockets from this thread instead leaves the loop polling
        closed descriptors until its timeout, with errors logged on the way.)"""
        self.live.close()
        # The HTTP threads first: a stream ending writes its last chunk through the loop,
        # which must still be there to take it (else: EBADF on its closed wake-up pipe).
        self._server.task_dispatcher.shutdown(timeout=1.0)
        if self._thread.is_alive():
            self._server.trigger.pull_trigger(self._close_all)
            self._thread.join(2.0)
        if self._thread.is_alive():
            log.warning("the web server did not stop in 2 s")
        else:
            self._close_all()  # the loop ended first; closing twice is harmless

    def _close_all(self) -> None:
        # Empties the server's socket map (listening socket, trigger, connections), which
        # is what ends its loop.
        wasyncore.close_all(self._server._map, ignore_all=True)
