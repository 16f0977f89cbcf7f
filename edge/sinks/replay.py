"""What a broker killed outright may have lost, kept to be published again after a reconnect.

Mosquitto acknowledges an event before it has written it to disk (it saves its queues every
``autosave_interval``), so a broker killed with ``kill -9`` or a power cut can lose the
events it acknowledged last. :class:`ReplayWindow` keeps the events acknowledged in the
last ``seconds`` of each connection; when the next connection is accepted, they are
published again (duplicates that consumers drop by ``id``, and nothing a crash took).

Each acknowledgement is tagged with the connection it came on (a counter the sink raises
on every accepted connect). That keeps the window where the loss was: the acknowledgements
of a new connection, which can arrive before the delivery thread has noticed the
reconnect, never move the window of the connection that was lost, and a window that was
only partly published when the connection dropped again is published on the next one.
"""

from __future__ import annotations

import collections

#: The most acknowledged events kept (a bound on memory at very high event rates).
MOST = 50_000


class ReplayWindow:
    """The events to publish again after a reconnect (one delivery thread uses it).

    Args:
        seconds: how far before a connection's last acknowledgement an event counts as at
            risk (``sinks.mqtt.replay_s``); 0 keeps nothing.
        most: the most acknowledged events kept.
    """

    def __init__(self, seconds: float, most: int = MOST) -> None:
        self.seconds = seconds
        # (acknowledged at, connection, topic, payload), oldest first; the oldest drop
        # out past ``most``
        self._acked: collections.deque[tuple[float, int, str, str]] = collections.deque(
            maxlen=most)
        self._due: collections.deque[tuple[str, str]] = collections.deque()
        self._taken_for = 0  # the connection whose window was last queued

    def acked(self, at: float, connection: int, topic: str, payload: str) -> None:
        """Record that the broker acknowledged ``payload`` at ``at`` on ``connection``."""
        if not self.seconds:
            return
        self._acked.append((at, connection, topic, payload))
        # Trimming to the newest acknowledgement is safe only once the windows of every
        # earlier connection were taken; until then the older ones are still needed.
        if connection <= self._taken_for:
            cutoff = at - self.seconds
            while self._acked[0][0] < cutoff:
                self._acked.popleft()

    def reconnected(self, connection: int) -> int:
        """Queue, once per connection, the window of the connections since the last one
        queued: the events acknowledged in the ``seconds`` before the last acknowledgement
        they received. Returns how many were queued."""
        if connection <= self._taken_for:
            return 0
        # Earlier windows were queued already (what of them was not acknowledged since,
        # paho sends again itself): only acknowledgements since the last window count.
        since, self._taken_for = self._taken_for, connection
        before = [entry for entry in self._acked if since <= entry[1] < connection]
        if not before:
            return 0
        start = before[-1][0] - self.seconds
        window = [(topic, payload) for at, _, topic, payload in before if at >= start]
        self._due.extend(window)
        return len(window)

    def next(self) -> tuple[str, str] | None:
        """The next event to publish again (topic, payload), or None; :meth:`sent` removes it."""
        return self._due[0] if self._due else None

    def sent(self) -> None:
        """The event :meth:`next` gave was handed to the client."""
        self._due.popleft()

    @property
    def due(self) -> int:
        """How many events wait to be published again."""
        return len(self._due)
