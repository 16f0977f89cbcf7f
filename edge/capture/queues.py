"""The bounded frame queue between capture and the workers, with its back-pressure policy.

A deque guarded by one condition: live sources drop the OLDEST queued frame when the
workers are behind (latency over completeness, counted); files wait for room (nothing
dropped). Each frame is numbered when a worker takes it, so dropped frames leave no gap
in the numbering the collector re-orders by.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """Bounded FIFO with a drop-oldest policy and gapless dispatch numbers.

    Args:
        maxsize: items held at most.
        drop_oldest: when full, discard the oldest item (live) instead of waiting (files).
        keep: items never dropped (end-of-stream markers).
    """

    def __init__(self, maxsize: int, drop_oldest: bool,
                 keep: type | tuple[type, ...] = ()) -> None:
        if maxsize <= 0:
            raise ValueError(f"maxsize must be > 0, got {maxsize}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._keep = keep
        self._items: deque[T] = deque()
        self._dispatched = 0
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    def offer(self, item: T, stop: threading.Event, poll_s: float = 0.05) -> bool:
        """Queue ``item``: drop the oldest when full (live) or wait for room (files).

        Returns:
            False when ``stop`` was set while waiting for room.
        """
        with self._changed:
            if self.drop_oldest:
                if len(self._items) >= self.maxsize and not isinstance(item, self._keep):
                    self._drop_oldest()
                self._items.append(item)
                self._changed.notify_all()
                return True
            while len(self._items) >= self.maxsize:
                if stop.is_set():
                    return False
                self._changed.wait(poll_s)
            self._items.append(item)
            self._changed.notify_all()
            return True

    def take(self, timeout: float) -> tuple[int, T] | None:
        """The oldest item and its dispatch number, or ``None`` after ``timeout`` seconds."""
        with self._changed:
            if not self._items and not self._changed.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            n = self._dispatched
            self._dispatched += 1
            self._changed.notify_all()
            return n, item

    def _drop_oldest(self) -> None:
        # An end marker at the head is kept; the oldest frame behind it goes instead.
        for i, old in enumerate(self._items):
            if not isinstance(old, self._keep):
                del self._items[i]
                self.dropped += 1
                return
