"""Keeping a live source open: reopen it with capped exponential backoff.

Cameras get unplugged and streams drop; a service keeps running, reports ``source: down``
in its state and tries again after 1, 2, 4 ... seconds (``source.reconnect``). Files are
not retried: a broken file is an error.
"""

from __future__ import annotations

import logging
import threading

from edge.capture.sources import FrameSource, SourceError
from edge.frames import Frame
from edge.stats import Count, Stats

log = logging.getLogger(__name__)


class Reconnecting:
    """Reads from ``source``, reopening it when it is live and fails.

    Args:
        source: the frame source.
        backoff: (initial, max) seconds between attempts.
        stats: gets ``source`` (``ok``/``down``), ``source_errors`` and
            ``source_reconnects``.
        stop: set to give up waiting (the pipeline's stop).
    """

    def __init__(self, source: FrameSource, backoff: tuple[float, float], stats: Stats,
                 stop: threading.Event) -> None:
        self.source = source
        self.backoff = backoff
        self.stats = stats
        self.stop = stop
        self._last_failure = ""

    def open(self) -> bool:
        """Open the source, retrying a live one until it opens; False on stop.

        Raises:
            SourceError: a file source that cannot be opened.
        """
        try:
            self.source.open()
        except SourceError as exc:
            if not self.source.live:
                raise
            # Said once: a service waits for a camera to be plugged in (or a stream to
            # start) rather than failing, and the user should know why nothing happens.
            log.warning("%s; retrying every %.0f-%.0f s until it opens (source: down; "
                        "Ctrl-C or SIGTERM stops)", exc, *self.backoff)
            self._last_failure = str(exc)
            return self._reopen(close_first=False)
        self.stats.set("source", "ok")
        return True

    def read(self) -> Frame | None:
        """The next frame; ``None`` at the end of a file or on stop while reconnecting.

        Raises:
            SourceError: a file source that fails.
        """
        while True:
            try:
                return self.source.read()
            except SourceError as exc:
                if not self.source.live:
                    raise
                self.stats.add(Count.SOURCE_ERRORS)
                log.warning("%s; reconnecting", exc)
                if not self._reopen(close_first=True):
                    return None

    def _reopen(self, close_first: bool) -> bool:
        delay, max_delay = self.backoff
        self.stats.set("source", "down")
        if close_first:
            self.source.close()
        while not self.stop.wait(delay):
            try:
                self.source.open()
            except SourceError as exc:
                self.stats.add(Count.SOURCE_ERRORS)
                delay = min(delay * 2, max_delay)
                # A new reason is news; the same one again is not (one line per cause).
                level = logging.DEBUG if str(exc) == self._last_failure else logging.WARNING
                log.log(level, "%s; next attempt in %.1f s", exc, delay)
                self._last_failure = str(exc)
                continue
            self.stats.set("source", "ok")
            self.stats.add(Count.SOURCE_RECONNECTS)
            self._last_failure = ""
            log.info("source is back")
            return True
        return False
