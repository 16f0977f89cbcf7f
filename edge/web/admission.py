"""Who gets the web server's connections, threads and buffers: decided on waitress's loop
thread, before a request costs anything.

- A request with a body is checked once its headers are in: without the token it is
  refused before a byte of the body is stored, and at most :data:`BODIES_AT_ONCE` large
  bodies arrive at a time (each is buffered whole before the app sees it).
- Near the connection limit, the connections that have been quiet longest and that no
  thread is answering are closed, so a new client (a health check, Prometheus) gets in.
- A request whose headers, or whole body, take too long is cut.
- waitress's own error answers carry the app's security headers.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import Error
from werkzeug.http import parse_cookie

from edge.web.app import SECURITY_HEADERS
from edge.web.guard import COOKIE, TokenGuard

#: Longest a client may take to send a request's headers, and the whole request (a photo
#: upload over a slow phone link included), from its first byte. waitress closes only
#: silent connections (``channel_timeout``), so a client sending a byte every few seconds
#: would otherwise hold its connection for ever.
REQUEST_TIMEOUT_S = 20.0
BODY_TIMEOUT_S = 120.0

#: Bodies above :data:`SMALL_BODY` bytes arriving at once; one more gets 503.
BODIES_AT_ONCE = 4
SMALL_BODY = 65_536

#: Connections kept free for new clients: past ``limit - HEADROOM`` open ones, the
#: quietest idle ones are closed down to ``limit - 2 * HEADROOM``.
HEADROOM = 20


class Refused(Error):
    """An answer given before the app sees the request, as JSON like the app's."""

    def __init__(self, code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = {401: "Unauthorized", 429: "Too Many Requests",
                       503: "Service Unavailable"}.get(code, "Error")
        self.retry_after = retry_after

    def to_response(self, _ident: str | None = None) -> tuple[str, list, bytes]:
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return (f"{self.code} {self.reason}", headers,
                json.dumps({"error": self.body}).encode())


def refusal(guard: TokenGuard, parser: Any, client: str, bodies_arriving: int) -> Refused | None:
    """Whether a request whose headers are in, and which has a body, may send it.

    Args:
        guard: the token check the app uses too.
        parser: waitress's parser of the request (headers in, body not yet).
        client: the peer's address.
        bodies_arriving: large bodies being received now, this one included.
    """
    headers = parser.headers
    token = parse_qs(parser.query or "").get("token", [""])[0]
    cookie = parse_cookie(headers.get("COOKIE", "")).get(COOKIE, "")
    denied = guard.refusal(client, parser.path or "", headers.get("AUTHORIZATION", ""),
                           token, cookie)
    if denied:
        return Refused(*denied)
    if bodies_arriving > BODIES_AT_ONCE:
        return Refused(503, f"{BODIES_AT_ONCE} uploads are arriving already; send this one "
                            "again in a few seconds", retry_after=2)
    return None


def _large_body(parser: Any) -> bool:
    return parser.chunked or parser.content_length > SMALL_BODY


class _HeadedErrorTask(ErrorTask):
    """waitress's own error answers (a malformed request, a body over the limit, headers
    too large) and :class:`Refused` ones, with the same security headers as the app's."""

    def execute(self) -> None:
        self.response_headers.extend(SECURITY_HEADERS.items())
        super().execute()


class _CheckedParser(HTTPRequestParser):
    """waitress's request parser that asks :func:`refusal` once a body's headers are in."""

    def __init__(self, adj: Any, channel: _Channel) -> None:
        super().__init__(adj)
        self.channel = channel

    def received(self, data: bytes) -> int:
        headers_before = self.headers_finished
        consumed = super().received(data)
        if (self.headers_finished and not headers_before and not self.completed
                and self.error is None):
            server = self.channel.server
            arriving = sum(1 for ch in list(server.active_channels.values())
                           if (r := getattr(ch, "request", None)) is not None
                           and r.headers_finished and not r.completed and _large_body(r))
            refused = refusal(server.guard, self, str(self.channel.addr[0]), arriving)
            if refused is not None:  # answered, and the connection closed after it
                self.error, self.completed = refused, True
        return consumed


class _Channel(HTTPChannel):
    """waitress's connection: checked requests, and when each request's first byte came."""

    request_started = 0.0
    error_task_class = _HeadedErrorTask

    def parser_class(self, adj: Any) -> _CheckedParser:  # type: ignore[override]
        return _CheckedParser(adj, self)

    def received(self, data: bytes) -> bool:
        if data and self.request is None:
            self.request_started = time.monotonic()
        return super().received(data)


def admit(server: Any, guard: TokenGuard) -> None:
    """Make waitress's ``server`` check requests with :func:`refusal`, and, on its
    once-a-second maintenance, cut slow requests and keep :data:`HEADROOM` connections
    free."""
    server.channel_class = _Channel
    server.guard = guard
    maintenance = server.maintenance

    def maintain(now: float) -> None:
        maintenance(now)
        _cut_slow_requests(server.active_channels)
        _keep_headroom(server.active_channels, server.adj.connection_limit)

    server.maintenance = maintain


def _cut_slow_requests(channels: dict) -> None:
    t = time.monotonic()
    for channel in list(channels.values()):
        request = channel.request
        if request is None or channel.requests:
            continue
        started = getattr(channel, "request_started", t)
        if (t - started > BODY_TIMEOUT_S
                or (not request.headers_finished and t - started > REQUEST_TIMEOUT_S)):
            channel.will_close = True


def _keep_headroom(channels: dict, limit: int) -> None:
    open_now = [ch for ch in list(channels.values()) if not ch.will_close]
    if len(open_now) <= limit - HEADROOM:
        return
    # Only connections no thread is answering: a stream or an upload being read stays.
    quiet = sorted((ch for ch in open_now if not ch.requests),
                   key=lambda ch: ch.last_activity)
    for channel in quiet[:len(open_now) - (limit - 2 * HEADROOM)]:
        channel.will_close = True
