"""The sink group: fans every event out to each sink and keeps one sink's failure its own.

Called from the pipeline's sink thread only. A sink that raises is counted
(``sink_errors.<name>`` in the stats) and logged once per distinct failure, and the
other sinks still get the event: a broker that is away must not stop the event log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.events import EmotionEvent
from edge.sinks import Sink
from edge.stats import Stats

log = logging.getLogger(__name__)


class SinkGroup:
    """Every enabled sink behind one ``write``/``status``/``flush``/``close``.

    Args:
        sinks: the sinks, in the order events are written to them.
        stats: where failures are counted.
    """

    def __init__(self, sinks: Sequence[Sink], stats: Stats) -> None:
        self.sinks = list(sinks)
        self.stats = stats
        self._last_failure = ""

    def write(self, event: EmotionEvent) -> None:
        """Hand ``event`` to every sink."""
        for sink in self.sinks:
            self._call(sink, "write", event)

    def status(self, state: dict) -> None:
        """Hand runtime state (faces, fps, source health) to every sink."""
        for sink in self.sinks:
            self._call(sink, "status", state)

    def flush(self) -> None:
        """Make everything written so far durable, sink by sink."""
        for sink in self.sinks:
            self._call(sink, "flush")

    def close(self) -> None:
        """Close every sink (a failure is logged with its traceback and the rest still close)."""
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as exc:  # a full or vanished disk: the user's to fix, in one line
                self.stats.add(f"sink_errors.{sink.name}")
                log.error("sink %s failed: %s", f"{sink.name}.close", exc)
            except Exception:
                self.stats.add(f"sink_errors.{sink.name}")
                log.exception("closing sink %s failed", sink.name)

    def _call(self, sink: Sink, method: str, *args: object) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception as exc:
            self.stats.add(f"sink_errors.{sink.name}")
            failure = f"{sink.name}.{method}: {exc}"
            if failure != self._last_failure:
                log.error("sink %s failed: %s", f"{sink.name}.{method}", exc)
            self._last_failure = failure
