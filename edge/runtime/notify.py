"""The systemd notify protocol (READY, STATUS, WATCHDOG, STOPPING), spoken only under systemd.

Messages go as datagrams to ``$NOTIFY_SOCKET``; without it every call is a no-op, so the
runner behaves the same from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages when ``NOTIFY_SOCKET`` is set.

    Args:
        environ: the environment to read (``os.environ`` by default).
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and (not pid or pid == str(os.getpid()))
        #: Seconds between watchdog pings (half the systemd timeout), or None.
        self.watchdog_interval: float | None = (int(usec) / 1e6 / 2) if watchdog_for_us else None

    def send(self, *fields: str) -> None:
        """Send ``KEY=VALUE`` fields as one message; failures are logged, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._addr)
        except OSError as exc:
            log.warning("systemd notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *( [f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
