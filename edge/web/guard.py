"""The web token: who may read the device, checked the same way wherever a request is seen.

The app checks every request but ``/api/health`` (:mod:`edge.web.app`); the server checks
a request that carries a body as soon as its headers are in, before a byte of the body is
stored (:mod:`edge.web.admission`). Both ask one :class:`TokenGuard`, so guessing counts
the same on either path.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

#: The browser cookie that keeps the session once a page was opened with ``?token=``.
COOKIE = "emotion_edge_token"

#: Paths anyone may read: what a health check needs, and nothing else.
OPEN_PATHS = frozenset({"/api/health"})


def session_value(token: str) -> str:
    """The browser cookie's value: derived from the token, so it never leaks the token."""
    return hmac.new(token.encode(), b"emotion-edge web session", hashlib.sha256).hexdigest()


class TokenGuard:
    """Checks a request's credentials against the token (``None``: no token, all pass).

    A right token always passes, whatever came before it; after ``limit`` wrong tokens in
    ``window_s`` from one address, that address is refused until the window has passed
    (a brute force then costs minutes per few guesses). A missing token is not a guess:
    a stale browser tab polling without it blocks nobody.
    """

    def __init__(self, token: str | None, limit: int = 10, window_s: float = 60.0,
                 kept: int = 1024) -> None:
        self.token = token
        self.session = session_value(token) if token is not None else None
        self.limit, self.window_s, self.kept = limit, window_s, kept
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def is_token(self, given: str | None) -> bool:
        """Whether ``given`` is the token itself (not the session cookie)."""
        return bool(self.token is not None and given
                    and hmac.compare_digest(given.encode(), self.token.encode()))

    def refusal(self, client: str, path: str, authorization: str, query_token: str,
                cookie: str) -> tuple[int, str] | None:
        """``None`` when the request may go on, else its status and one-line reason.

        Args:
            client: the peer's address, for counting wrong guesses.
            path: the request's path (``OPEN_PATHS`` need no token).
            authorization: the ``Authorization`` header ('' if none).
            query_token: the ``token`` query parameter ('' if none).
            cookie: the session cookie's value ('' if none).
        """
        if self.token is None or path in OPEN_PATHS:
            return None
        given = authorization.removeprefix("Bearer ").strip() or query_token
        ok = (self.is_token(given) if given
              else hmac.compare_digest(cookie.encode(), str(self.session).encode()))
        if ok:
            return None
        if self._blocked(client):
            return 429, "too many wrong tokens from this address; wait a minute"
        if given:
            self._add(client)
        return 401, ("missing or wrong token: send 'Authorization: Bearer <token>' or open "
                     "the page once with ?token=<token>")

    def _add(self, client: str) -> None:
        with self._lock:
            if len(self._seen) >= self.kept and client not in self._seen:
                self._seen.pop(next(iter(self._seen)))
            self._seen.setdefault(client, []).append(time.monotonic())

    def _blocked(self, client: str) -> bool:
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._seen.get(client, ()) if now - t < self.window_s]
            if recent:
                self._seen[client] = recent
            else:
                self._seen.pop(client, None)
            return len(recent) >= self.limit
