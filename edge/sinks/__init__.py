"""Event sinks: where emotion events go. One module per sink, one interface.

A sink ``<name>`` is the module ``edge.sinks.<name>`` with a ``from_config(cfg) -> Sink``
factory, enabled by ``sinks.<name>.enabled`` in the config (its dataclass in
:mod:`edge.config`) and by ``--sink <name>`` on the command line: adding a sink touches
its module and its config dataclass, nothing else.
"""

from __future__ import annotations

from typing import Protocol

from edge.events import EmotionEvent


class Sink(Protocol):
    """A destination for events; called from the pipeline's sink thread only."""

    name: str

    def write(self, event: EmotionEvent) -> None:
        """Deliver (or durably queue) one event; raise when it could not."""

    def status(self, stats: dict) -> None:
        """Periodic runtime state (fps, faces in view, source health); may be ignored."""

    def flush(self) -> None:
        """Make everything written so far durable."""

    def close(self) -> None:
        """Flush and release resources; safe to call twice."""
