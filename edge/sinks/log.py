"""JSON-lines event log with size-based rotation (``events.jsonl``, ``.1``, ``.2``...)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TextIO

from edge.config import Config, ConfigError
from edge.events import EmotionEvent

log = logging.getLogger(__name__)


class JsonLinesSink:
    """Appends one JSON object per line; rotates when the file would exceed ``max_bytes``.

    Each line is flushed to the OS as it is written, so a crash loses at most what the
    OS had not written yet; ``flush``/``close`` also fsync.
    """

    name = "log"

    def __init__(self, path: str | Path, max_bytes: int = 10_000_000, backups: int = 5) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = self.path.open("a", encoding="utf-8")
        self._size = self.path.stat().st_size
        self.written = 0
        log.info("event log %s (rotates at %d bytes, keeps %d)", self.path, max_bytes, backups)

    def write(self, event: EmotionEvent) -> None:
        line = event.to_json() + "\n"
        size = len(line.encode())
        if self._size and self._size + size > self.max_bytes:
            self._rotate()
        fh = self._open()
        fh.write(line)
        fh.flush()
        self._size += size
        self.written += 1

    def status(self, stats: dict) -> None:
        """The log holds events only."""

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None

    def _open(self) -> TextIO:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
            self._size = self.path.stat().st_size
        return self._fh

    def _rotate(self) -> None:
        self.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = self.path.open("a", encoding="utf-8")
        self._size = 0


def from_config(cfg: Config) -> JsonLinesSink:
    """The event log ``sinks.log`` describes (the sink group's factory for this sink)."""
    c = cfg.sinks.log
    try:
        return JsonLinesSink(c.path, c.max_bytes, c.backups)
    except OSError as exc:
        raise ConfigError(f"sinks.log.path: cannot write {c.path} ({exc.strerror})") from None
