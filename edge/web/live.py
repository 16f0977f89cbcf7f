"""What the web page shows, kept up to date by the pipeline and read by HTTP threads.

:class:`LiveState` is a sink (the pipeline's sink thread hands it every event and the
periodic status) and an ``on_frame`` hook (the collector thread hands it each frame's
tracked faces). HTTP threads read copies under one lock. Camera pixels are kept only when
``web.preview`` is on, as a reference to the latest frame, never stored, and encoded to
JPEG only by a request that is showing them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from edge.annotate import draw_faces
from edge.events import EmotionEvent
from edge.frames import Frame
from edge.vision.boxes import Box
from edge.vision.tracking import Tracker

#: Seconds of dominant-emotion history the page's timeline shows (one sample a second).
TIMELINE_S = 600


class LiveState:
    """The latest faces, recent events, timeline and device status, for the web page.

    Args:
        labels: the model's labels, in output order.
        events_kept: events kept in memory for the page and ``/api/events``.
        preview: keep the latest frame so the page can show it (``web.preview``).
    """

    name = "web"

    def __init__(self, labels: tuple[str, ...], events_kept: int, preview: bool) -> None:
        self.labels = labels
        self.preview = preview
        self._lock = threading.Condition()
        self._events: deque[dict] = deque(maxlen=events_kept)
        self._serial = 0  # events seen so far; the SSE stream's cursor
        self.counts: Counter[tuple[str, str]] = Counter()  # (type, emotion) -> events
        self._faces: list[tuple[int, Box, int, np.ndarray]] = []  # id, box, label, probs
        self._size = (0, 0)
        self._frame: Frame | None = None
        self._frame_no = -1
        self._timeline: deque[tuple[float, str | None, int]] = deque(maxlen=TIMELINE_S)
        self._status: dict[str, Any] = {}
        self.closed = False

    # -- the pipeline side ---------------------------------------------------------------

    def __call__(self, frame: Frame, boxes: list[Box], tracker: Tracker) -> None:
        """The collector's per-frame hook: faces in view (and the frame, with preview)."""
        # Raw figures only: the page's dicts are built when a request asks (snapshot),
        # not on every frame of the collector thread.
        faces = [(t.id, tuple(int(v) for v in t.box), t.reported, t.probs.copy())
                 for t in tracker.in_view()]
        now = time.time()
        with self._lock:
            self._faces = faces
            self._size = (int(frame.gray.shape[1]), int(frame.gray.shape[0]))
            self._frame_no = frame.seq
            if self.preview:
                self._frame = frame
            if not self._timeline or now - self._timeline[-1][0] >= 1.0:
                self._timeline.append((now, tracker.dominant(), len(faces)))

    def write(self, event: EmotionEvent) -> None:
        """Sink interface: keep the event for the page and count it for ``/metrics``."""
        with self._lock:
            self._events.append(event.to_dict())
            self._serial += 1
            self.counts[(event.type, event.emotion)] += 1
            self._lock.notify_all()

    def status(self, stats: dict) -> None:
        """Sink interface: the service's periodic status (fps, source, drops...)."""
        with self._lock:
            self._status = dict(stats)

    def flush(self) -> None:
        """Sink interface: nothing to make durable (the page's memory is not a log)."""

    def close(self) -> None:
        """Sink interface: end the event streams of open pages."""
        with self._lock:
            self.closed = True
            self._lock.notify_all()

    # -- the HTTP side ------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Faces in view, frame size, timeline and the last status, as JSON-ready data."""
        with self._lock:
            return {"faces": [self._face(*f) for f in self._faces], "frame": self._frame_no,
                    "size": list(self._size), "status": dict(self._status),
                    "timeline": [{"t": round(t, 1), "dominant": d, "faces": n}
                                 for t, d, n in self._timeline]}

    def faces_by_emotion(self) -> dict[str, int]:
        """Faces in view per reported emotion, every label present (for ``/metrics``)."""
        counts = dict.fromkeys(self.labels, 0)
        with self._lock:
            for _, _, label, _ in self._faces:
                counts[self.labels[label]] += 1
        return counts

    def _face(self, face: int, box: Box, label: int, probs: np.ndarray) -> dict:
        return {"face": face, "box": list(box), "emotion": self.labels[label],
                "confidence": round(float(probs[label]), 4),
                "probs": {k: round(float(p), 4)
                          for k, p in zip(self.labels, probs, strict=True)}}

    @staticmethod
    def since_is_valid(since: str) -> bool:
        """Whether ``since`` is an event id (``<run>-<n>``) or an ISO 8601 time."""
        run, _, n = since.rpartition("-")
        return (bool(run) and n.isdigit() and len(since) <= 80) or parse_time(since) is not None

    def events_since(self, since: str | None) -> list[dict]:
        """Kept events after ``since``: an event id seen last, or an ISO 8601 time.

        An id no longer kept (or never seen) returns every kept event.
        """
        _, events = self.backlog(None)
        if not since:
            return events
        after = _after_id(events, since)
        if after is not None:
            return after
        when = parse_time(since)
        if when is None:
            return events
        return [e for e in events if parse_time(e["ts"]) > when]

    def wait_events(self, after: int, timeout: float) -> tuple[int, list[dict]]:
        """Block until events beyond serial ``after`` arrive (or ``timeout``); returns the
        new serial and those events (at most what is still kept)."""
        with self._lock:
            self._lock.wait_for(lambda: self._serial > after or self.closed, timeout)
            new = min(self._serial - after, len(self._events))
            return self._serial, list(self._events)[len(self._events) - new:] if new else []

    def backlog(self, since: str | None) -> tuple[int, list[dict]]:
        """The serial now and the kept events after ``since`` (all kept ones without it),
        taken together, so a stream that starts with them and then waits from that serial
        neither misses nor repeats an event."""
        with self._lock:
            serial = self._serial
            events = list(self._events)
        after = _after_id(events, since) if since else None
        return serial, events if after is None else after

    def jpeg(self, last: int) -> tuple[int, bytes | None]:
        """The latest frame with boxes and labels as JPEG, if newer than frame ``last``."""
        with self._lock:
            frame, faces, seq = self._frame, list(self._faces), self._frame_no
        if frame is None or seq == last:
            return last, None
        image = (frame.image.copy() if frame.image is not None
                 else cv2.cvtColor(frame.gray, cv2.COLOR_GRAY2BGR))
        if faces:
            draw_faces(image, [f[1] for f in faces], [self.labels[f[2]] for f in faces],
                       [float(f[3][f[2]]) for f in faces], [f[0] for f in faces])
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
        return seq, (data.tobytes() if ok else None)


def _after_id(events: list[dict], event_id: str) -> list[dict] | None:
    """The events after the one with ``event_id``; ``None`` when it is not among them."""
    for i, e in enumerate(events):
        if e["id"] == event_id:
            return events[i + 1:]
    return None


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (``Z`` or an offset), or ``None``."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:  # a time without an offset is UTC, as event times are
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def blank_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A grey frame, shown before the first frame arrives."""
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 40, np.uint8))
    return data.tobytes() if ok else b""
