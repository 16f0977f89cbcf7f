"""Events as JSON lines on standard output (for piping into other tools)."""

from __future__ import annotations

import sys
from typing import TextIO

from edge.config import Config
from edge.events import EmotionEvent


class StdoutSink:
    """Writes each event as one JSON line to a text stream (standard output by default)."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, event: EmotionEvent) -> None:
        stream = self._stream or sys.stdout
        stream.write(event.to_json() + "\n")
        stream.flush()

    def status(self, stats: dict) -> None:
        """Standard output carries events only."""

    def flush(self) -> None:
        (self._stream or sys.stdout).flush()

    def close(self) -> None:
        self.flush()


def from_config(cfg: Config) -> StdoutSink:
    """The standard-output sink (``sinks.stdout`` has no settings beyond ``enabled``)."""
    return StdoutSink()
