"""The detection schedule: where the face detector looks in each frame.

Haar detection is most of a frame's cost, and a full-frame search the most of that. The
schedule runs a full-frame search every ``full_every`` frames and, in between, searches
only windows around the faces being tracked (about a fifth of the cost), falling back to a
full search when a tracked face is not found there (it moved fast, or the scene cut) or
when nobody is tracked.

The collector publishes the tracked boxes (:meth:`DetectionSchedule.track`); the workers
read them (:meth:`DetectionSchedule.detect`). The published value is an immutable tuple
replaced whole, so workers never see it half-written.
"""

from __future__ import annotations

import time

from edge.faces import Box, FaceDetector
from edge.sources import Frame
from edge.stats import Stats


class DetectionSchedule:
    """Decides, per frame, between a full-frame search and windows around tracked faces.

    Args:
        full_every: a full-frame search every this many frames (1: every frame).
        region_margin: how far around a tracked face its window reaches, in face widths.
        stats: gets the ``resize``/``detect`` timings and the ``detect_full``,
            ``detect_partial`` and ``detect_fallback`` counters.
    """

    def __init__(self, full_every: int, region_margin: float, stats: Stats) -> None:
        self.full_every = full_every
        self.region_margin = region_margin
        self.stats = stats
        self._regions: tuple[Box, ...] = ()

    @property
    def follows_tracks(self) -> bool:
        """Whether the collector needs to publish tracked boxes (:meth:`track`)."""
        return self.full_every > 1

    def track(self, boxes: list[Box]) -> None:
        """Publish the tracked faces' latest boxes (collector thread)."""
        self._regions = tuple(boxes)

    def detect(self, detector: FaceDetector, frame: Frame, order: int) -> list[Box]:
        """The faces in ``frame``, the ``order``-th frame handed to the workers."""
        stats = self.stats
        regions = self._regions
        if self.full_every > 1 and regions and order % self.full_every != 0:
            t0 = time.perf_counter()
            boxes = detector.detect_around(frame.gray, list(regions), self.region_margin)
            stats.record("detect", time.perf_counter() - t0)
            if len(boxes) >= len(regions):
                stats.add("detect_partial")
                return boxes
            stats.add("detect_fallback")
        t0 = time.perf_counter()
        small = (frame.small_gray if frame.small_gray is not None
                 else detector.downscale(frame.gray))
        t1 = time.perf_counter()
        boxes = detector.detect(frame.gray, small)
        t2 = time.perf_counter()
        stats.record("resize", t1 - t0)
        stats.record("detect", t2 - t1)
        stats.add("detect_full")
        return boxes
