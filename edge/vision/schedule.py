"""The detection schedule: where the face detector looks in each frame.

Haar detection is most of a frame's cost, and a full-frame search the most of that. Two
schedules, chosen per frame:

**Motion first** (``motion.enabled``, the default). The capture thread measures motion on
a tiny gray frame (:mod:`edge.vision.motion`); a worker then runs the cascade only
- around the known faces (tracked, or found by a worker in the last few frames). A
  steady face (confirmed, found in its latest frame) is followed by template matching
  (:mod:`edge.vision.follow`, a fraction of a millisecond) and checked by the cascade on one
  frame in ``search_every``, in a tight window where it went; a new or missed face, or a
  poor match, gets a cascade window around its last box every frame (the tight one while
  the cascade's latest find of it is a frame or two old). With
  ``still_check_every`` above 1, a steady face with no motion near it keeps its box
  without either and is checked every that many frames. A known face missing from its
  window is searched for in a wider area at every size;
- on the moving areas that no known face explains (someone walking in);
- on one slice of a full-frame search (a band of face sizes, i.e. of the cascade's scale
  pyramid) on ``safety_slices`` of every ``safety_every`` frames, evenly spaced: a safety
  net for faces that appear without moving, which never stalls one frame with a whole
  search nor a live camera with several dear frames in a row.
A face followed or kept without the cascade is classified on one frame in
``classify_every``; in the others the tracker counts its latest classification again
(:attr:`Found.reuse`). A still scene without faces costs a tiny-frame comparison and
nothing else.

**Periodic**, when motion is off or more than ``max_share`` of the frame moved (the camera
panned, the light changed, the first frame): windows around the tracked faces in every
frame (a wider search around one its window missed), and a full-frame search spread over
``full_every`` frames, one band of face sizes per frame, so that no frame pays for a
whole search at the resolution ``min_size`` needs.

Every search reaches faces down to ``min_size`` full-resolution pixels, whatever the
camera's resolution (:class:`edge.vision.faces.Pyramid`).

Frames are counted, not timed, so what is searched in which frame does not depend on the
machine. Three threads drive one schedule: the capture thread measures each frame's motion
(:meth:`DetectionSchedule.observe`), which travels with the frame through the queue; a
worker finds the faces in it (:meth:`DetectionSchedule.find`); the collector publishes
the tracked boxes (:meth:`DetectionSchedule.track`). The published value is an immutable
tuple replaced whole, so workers never see it half-written.
"""

from __future__ import annotations

import threading
import time

from edge.config import MotionConfig
from edge.frames import Frame
from edge.stats import Count, Stats
from edge.vision.boxes import (
    SAME_FACE_IOU,
    Box,
    dedupe,
    iou,
    iou_matrix,
    mostly_inside,
    touches_any,
    widen,
)
from edge.vision.faces import FaceDetector, Pyramid
from edge.vision.follow import Template, cut, follow
from edge.vision.motion import Motion, MotionDetector, search_regions
from edge.vision.plans import Found, Plan, Tracked, held
from edge.vision.slices import search_slices, size_bands, slice_due
from edge.vision.tuning import TUNING, ScheduleTuning


class DetectionSchedule:
    """Decides, per frame, where the cascade runs (see the module docstring).

    Args:
        full_every: periodic schedule: a full-frame search every this many frames.
        region_margin: how far around a tracked face its window reaches, in face widths.
        stats: gets the ``motion``/``resize``/``detect`` timings and a counter per kind
            of search (``detect_full``, ``detect_partial``, ``detect_fallback``,
            ``detect_motion``, ``detect_safety``) or of a face kept without one
            (``detect_followed``, ``detect_still``).
        motion: motion-first settings (``None`` or not enabled: always periodic).
        min_size: smallest face side in full-resolution pixels (how small a moving area
            may be searched).
    """

    def __init__(self, full_every: int, region_margin: float, stats: Stats,
                 motion: MotionConfig | None = None, min_size: int = 48,
                 tuning: ScheduleTuning = TUNING) -> None:
        self.full_every = full_every
        self.tuning = tuning
        self.region_margin = region_margin
        self.stats = stats
        self.motion = motion if motion is not None and motion.enabled else None
        self._motion = MotionDetector(self.motion) if self.motion is not None else None
        self._least = 2 * min_size
        self._tracked: tuple[Tracked, ...] = ()
        self._recent: tuple[tuple[int, Box], ...] = ()  # (frame order, box) found lately
        self._templates: tuple[Template, ...] = ()  # the cascade's finds lately
        self._recent_lock = threading.Lock()
        self._slices_by_shape: dict[tuple[int, int], int] = {}

    @property
    def follows_tracks(self) -> bool:
        """Whether the collector needs to publish tracked boxes (:meth:`track`)."""
        return self.full_every > 1 or self.motion is not None

    def observe(self, frame: Frame) -> Motion | None:
        """``frame``'s motion (capture thread, frames in order), to travel with the frame
        to the worker that calls :meth:`find`; ``None`` when motion-first is off."""
        if self._motion is None:
            return None
        t0 = time.perf_counter()
        small = frame.small_gray
        motion = self._motion.update(small if small is not None else frame.gray,
                                     frame.gray.shape)
        self.stats.record("motion", time.perf_counter() - t0)
        return motion

    def track(self, tracked: list[Tracked]) -> None:
        """Publish the tracked faces' latest boxes (collector thread)."""
        self._tracked = tuple(tracked)

    def find(self, detector: FaceDetector, frame: Frame, order: int,
             motion: Motion | None = None) -> Found:
        """The faces in ``frame``, the ``order``-th frame handed to the workers, and which of
        them may keep their last classification (worker threads).

        Args:
            motion: what :meth:`observe` measured on this frame.
        """
        m = self.motion
        if m is not None and motion is not None and not motion.first:
            found = self._motion_first(detector, frame, order, m, motion)
            if found is not None:
                return found
        boxes = self._periodic(detector, frame, order)
        return Found(boxes, [False] * len(boxes))

    def _motion_first(self, detector: FaceDetector, frame: Frame, order: int,
                      m: MotionConfig, motion: Motion) -> Found | None:
        """Motion-first search; ``None`` when the moving areas cover most of the frame."""
        shape = frame.gray.shape
        known = self._known(order)
        windows = [widen(b, self.region_margin) for b in known]
        unexplained = [b for b in motion.boxes if not any(mostly_inside(b, w) for w in windows)]
        regions = search_regions(unexplained, shape, self.tuning.motion_pad, self._least)
        if sum(w * h for _, _, w, h in regions) > m.max_share * shape[0] * shape[1]:
            return None
        t0 = time.perf_counter()
        plan = self._plan(frame, order, m, motion, known, windows)
        found, lost = self._check_windows(detector, frame, plan)
        slices = self._safety_slices(shape, detector)
        safety = (slice_due(order % m.safety_every, slices, m.safety_every)
                  if m.safety_every else None)
        if regions or safety is not None or lost:
            shrink_s = self._searches(detector, frame, regions, lost,
                                      (safety, slices) if safety is not None else None,
                                      known, found)
            self.stats.record("resize", shrink_s)
            t0 += shrink_s  # the levels' making is resize, not detect
        self.stats.record("detect", time.perf_counter() - t0)
        found = dedupe(found)
        boxes = dedupe(found + plan.kept)
        self._remember(order, boxes, [c for b in found if (c := cut(frame.gray, b, order))])
        # A face the cascade did not see in this frame (followed or kept) has the same
        # crop, give or take a pixel or two, as when last classified.
        return Found(boxes, [b in plan.kept and b not in found and held(b, plan)
                             for b in boxes])

    def _safety_slices(self, shape: tuple[int, ...], detector: FaceDetector) -> int:
        """Over how many frames the safety search is spread: ``safety_slices`` for a frame
        whose whole search costs what a VGA frame's does, proportionally more for a
        larger one (:func:`search_slices`), so no slice costs more than a VGA one's."""
        m = self.motion
        assert m is not None
        key = (shape[0], shape[1])
        n = self._slices_by_shape.get(key)
        if n is None:
            n = min(m.safety_every, m.safety_slices * search_slices(shape, detector))
            self._slices_by_shape[key] = n  # one frame size per camera: computed once
        return n

    def _known(self, order: int) -> list[Box]:
        """The tracked faces' boxes, then those workers found in the frames around
        ``order`` that the tracker does not have yet (in that order)."""
        known = [t.box for t in self._tracked]
        recent = [b for o, b in self._recent if abs(o - order) < self.tuning.recent_frames]
        if recent and known:
            unexplained = (iou_matrix(recent, known) < SAME_FACE_IOU).all(axis=1)
            recent = [b for b, new in zip(recent, unexplained, strict=True) if new]
        return known + recent

    def _plan(self, frame: Frame, order: int, m: MotionConfig, motion: Motion,
              known: list[Box], windows: list[Box]) -> Plan:
        """What each known face needs in this frame: nothing (kept), following and a tight
        check (followed), or a cascade window around its last box (moving)."""
        tracked, stats = self._tracked, self.stats
        plan = Plan([], [], [], [])
        for i, (box, window) in enumerate(zip(known, windows, strict=True)):
            steady = i < len(tracked) and tracked[i].steady
            # Each face keeps its own phase (its id), so a crowd's checks and
            # classifications are spread over the frames instead of all landing on one.
            phase = order + (tracked[i].id if i < len(tracked) else 0)
            check_still = phase % m.still_check_every == 0
            search_all = phase % m.search_every == 0
            if phase % m.classify_every != 0:
                plan.reuse.append(box)
            if steady and not check_still and not touches_any(window, motion.boxes):
                plan.kept.append(box)
                stats.add(Count.DETECT_STILL)
                continue
            # Only a steady face is followed: a new or missed one must be seen by the
            # cascade itself (a template of a false detection would match its own patch
            # of background and confirm it).
            template = self._template_for(box, order)
            if steady and template is not None:
                moved, score = follow(frame.gray, template, self.tuning.follow_reach)
                if score >= self.tuning.follow_match:
                    if search_all:  # the cascade checks it where it now is
                        plan.followed.append(moved)
                    else:
                        plan.kept.append(moved)
                        stats.add(Count.DETECT_FOLLOWED)
                    continue
            fresh = template is not None and order - template.order <= self.tuning.fresh_frames
            if not steady and fresh:
                # A new face the cascade found a frame or two ago: the tight check window
                # finds it where it is now for a third of the wide window's cost (a room's
                # faces are all new at once when the scene starts). A steady face its
                # template lost has moved or changed too much for it: the wide window.
                plan.followed.append(template.box)
                continue
            plan.moving.append(box)
        return plan

    def _check_windows(self, detector: FaceDetector, frame: Frame,
                       plan: Plan) -> tuple[list[Box], list[Box]]:
        """The cascade in the windows of followed and moving faces: what it found there,
        and the faces it did not find in their windows (lost)."""
        found: list[Box] = []
        if plan.followed:
            found += detector.detect_around(frame.gray, plan.followed, self.tuning.check_margin,
                                             self.tuning.check_sizes, self.tuning.check_face_px)
            self.stats.add(Count.DETECT_PARTIAL)
        if plan.moving:
            found += detector.detect_around(frame.gray, plan.moving, self.region_margin)
            self.stats.add(Count.DETECT_PARTIAL)
        lost = [b for b in plan.followed + plan.moving if all(iou(b, f) == 0.0 for f in found)]
        return found, lost

    def _searches(self, detector: FaceDetector, frame: Frame, regions: list[Box],
                  lost: list[Box], safety: tuple[int, int] | None, known: list[Box],
                  found: list[Box]) -> float:
        """The searches on the frame's pyramid (moving areas, wider areas around lost
        faces, and slice ``k`` of the safety search spread over ``n`` slices when
        ``safety`` is ``(k, n)``), appending to ``found``; returns the seconds spent
        shrinking the frame, which are recorded as ``resize``, not ``detect``."""
        stats, shape = self.stats, frame.gray.shape
        pyramid = Pyramid(frame.gray, frame.small_gray)
        for region in regions:
            found += detector.search(pyramid, region)
            stats.add(Count.DETECT_MOTION)
        # A known face missing from its window moved fast or changed size: search a
        # wider area around it at every size before counting it as missed.
        for region in search_regions(lost, shape, self.tuning.lost_pad, self._least):
            found += detector.search(pyramid, region)
            stats.add(Count.DETECT_FALLBACK)
        if safety is not None:
            k, slices = safety
            smallest = max(detector.cfg.min_size, detector.smallest(shape[1]))
            bands = size_bands(smallest, min(shape[:2]), detector.cfg.scale_factor,
                               slices, detector.base)
            if k < len(bands):
                # The known faces are searched in their own windows; blanked here, the
                # safety search rejects their areas at its first stage instead of
                # spending most of its time on them.
                found += detector.search(pyramid, sizes=bands[k], blank=known + found)
                stats.add(Count.DETECT_SAFETY)
        return pyramid.shrink_s

    def _template_for(self, box: Box, order: int) -> Template | None:
        """The cascade's nearest earlier find of the face at ``box``, to follow it from."""
        best = None
        for t in self._templates:
            if t.order < order and (best is None or t.order > best.order) and iou(
                    t.box, box) >= SAME_FACE_IOU:
                best = t
        return best

    def _remember(self, order: int, boxes: list[Box], templates: list[Template]) -> None:
        """Keep this frame's finds as places to look in the frames around it, and the
        cascade's finds as templates to follow them by (workers)."""
        with self._recent_lock:
            latest = max([order, *(o for o, _ in self._recent)])
            self._recent = tuple([(o, b) for o, b in self._recent
                                  if o > latest - self.tuning.recent_frames]
                                 + [(order, b) for b in boxes])
            # A template must outlive the frames between two cascade checks.
            keep = max(self.tuning.recent_frames,
                       2 * (self.motion.search_every if self.motion else 1))
            self._templates = tuple([t for t in self._templates
                                     if t.order > latest - keep] + templates)

    def _periodic(self, detector: FaceDetector, frame: Frame, order: int) -> list[Box]:
        """The periodic schedule: a whole search every ``full_every`` frames (every frame
        while nobody is tracked) and windows around the tracked faces in between; or, on a
        frame whose whole search would cost more than one frame should
        (:func:`search_slices`), that search spread over the frames, one band of sizes each.
        """
        t0 = time.perf_counter()
        pyramid = Pyramid(frame.gray, frame.small_gray)
        slices = min(self.full_every, search_slices(frame.gray.shape, detector))
        if slices > 1:
            found = self._sliced(detector, frame, order, pyramid, slices)
        else:
            found = self._whole_or_windows(detector, frame, order, pyramid)
        self.stats.record("resize", pyramid.shrink_s)
        self.stats.record("detect", time.perf_counter() - t0 - pyramid.shrink_s)
        return found

    def _whole_or_windows(self, detector: FaceDetector, frame: Frame, order: int,
                          pyramid: Pyramid) -> list[Box]:
        """Windows around the tracked faces, or the whole search when it is due or a
        tracked face is missing from its window."""
        stats = self.stats
        regions = [t.box for t in self._tracked]
        if self.full_every > 1 and regions and order % self.full_every != 0:
            boxes = detector.detect_around(frame.gray, regions, self.region_margin)
            if len(boxes) >= len(regions):
                stats.add(Count.DETECT_PARTIAL)
                return boxes
            stats.add(Count.DETECT_FALLBACK)
        stats.add(Count.DETECT_FULL)
        return detector.search(pyramid)

    def _sliced(self, detector: FaceDetector, frame: Frame, order: int, pyramid: Pyramid,
                slices: int) -> list[Box]:
        """Windows around the known faces (a wider search around one its window missed,
        then the whole frame at its size), and one band of the whole search: the largest
        sizes first, so a face close to the camera is found in a scene's first frame and
        a crowd's small faces within ``full_every`` frames."""
        stats, shape = self.stats, frame.gray.shape
        known = self._known(order)  # tracked, and found by a worker in the frames around
        found: list[Box] = []
        if known:
            found = detector.detect_around(frame.gray, known, self.region_margin)
            stats.add(Count.DETECT_PARTIAL)
            lost = [b for b in known if all(iou(b, f) == 0.0 for f in found)]
            for region in search_regions(lost, shape, self.tuning.lost_pad, self._least):
                found += detector.search(pyramid, region)
                stats.add(Count.DETECT_FALLBACK)
            lost = [b for b in lost if all(iou(b, f) == 0.0 for f in found)]
            if lost:
                # Not near its last place either (a scene cut): the whole frame, at the
                # sizes of the faces lost only.
                sides = [max(w, h) for _, _, w, h in lost]
                found += detector.search(pyramid, sizes=(0.7 * min(sides), 1.5 * max(sides)),
                                         blank=found)
                stats.add(Count.DETECT_FALLBACK)
        bands = size_bands(detector.smallest(shape[1]), min(shape[:2]),
                           detector.cfg.scale_factor, slices, detector.base)
        k = len(bands) - 1 - order % self.full_every
        if k >= 0:
            found += detector.search(pyramid, sizes=bands[k], blank=found)
            stats.add(Count.DETECT_SLICE)
        if not known and 0 <= k < len(bands) - 1:
            # Nobody known yet: the workers search a scene's first frames side by side,
            # before any hears of another's finds, so each looks for the largest faces too.
            found += detector.search(pyramid, sizes=bands[-1], blank=found)
            stats.add(Count.DETECT_SLICE)
        found = dedupe(found)
        self._remember(order, found, [c for b in found if (c := cut(frame.gray, b, order))])
        return found
