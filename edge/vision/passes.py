"""The schedule for a detector that costs per frame, not per face (YuNet).

A learned detector finds every face in one pass over a reduced copy of the frame, so the
cascade's machinery (windows around each known face, motion areas, safety slices) buys
nothing. The detector passes over the whole frame on one frame in ``every``; in between,
the steady faces (confirmed, found in their latest frame) keep their boxes, and their
latest probabilities count again. Whenever a tracked face is new or was missed, every
frame gets a pass until it is confirmed, found again or gone, so a false detection is
never confirmed on kept boxes. A new face anywhere is found within ``every`` frames.

On a pass, a steady face is classified on one pass in ``classify_every``, on its own
phase (its track id), so a crowd's classifications are spread evenly over the passes.

The decision is :func:`plan_pass`, a pure function of the frame's number and the tracked
faces the collector published (an immutable snapshot), which tests drive with tables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge.frames import Frame
from edge.stats import Count, Stats
from edge.vision.boxes import SAME_FACE_IOU, Box, iou_matrix
from edge.vision.motion import Motion
from edge.vision.plans import Found, Tracked
from edge.vision.quality import turn
from edge.vision.yunet import YuNetDetector


@dataclass(frozen=True)
class PassPlan:
    """What one frame does.

    Attributes:
        detect: whether the detector passes over the frame; if not, the steady faces'
            boxes are the frame's faces.
        reuse: the tracked faces' boxes whose latest classification stands this frame.
    """

    detect: bool
    reuse: tuple[Box, ...]


def plan_pass(order: int, tracked: tuple[Tracked, ...], every: int,
              classify_every: int) -> PassPlan:
    """The plan for the ``order``-th frame given the tracked faces.

    A pass on frames ``0, every, 2 * every, ...`` and on every frame while a tracked face
    is not steady. Between passes every steady face keeps its classification; on a pass,
    one whose phase is due (``(order // every + id) % classify_every == 0``) is
    classified, the others keep theirs; a new or missed face is classified on every pass.
    """
    steady = [t for t in tracked if t.steady]
    if every > 1 and order % every and len(steady) == len(tracked):
        return PassPlan(False, tuple(t.box for t in steady))
    if classify_every <= 1:
        return PassPlan(True, ())
    passes = order // max(every, 1)
    return PassPlan(True, tuple(t.box for t in steady
                                if (passes + t.id) % classify_every != 0))


def reused(boxes: list[Box], plan: PassPlan) -> list[bool]:
    """Per found box: whether it is one of ``plan.reuse``'s faces (best overlap over
    :data:`SAME_FACE_IOU`), so its latest classification stands."""
    if not boxes or not plan.reuse:
        return [False] * len(boxes)
    overlaps = iou_matrix(boxes, list(plan.reuse))
    return [bool(row.max() >= SAME_FACE_IOU) for row in overlaps]


class PassSchedule:
    """One whole-frame pass of the detector per frame (see the module docstring).

    Args:
        stats: gets the ``detect`` timing, a ``detect_full`` count per pass and a
            ``detect_kept`` count per face kept without one.
        every: a pass on one frame in this many (more while a face is not steady).
        classify_every: a steady face is classified on one pass in this many.
        level_eyes: turn each crop so the eyes are level before it is classified.
    """

    def __init__(self, stats: Stats, every: int = 1, classify_every: int = 1,
                 level_eyes: bool = False) -> None:
        self.stats = stats
        self.level_eyes = level_eyes
        self.every = every
        self.classify_every = classify_every
        self._tracked: tuple[Tracked, ...] = ()

    @property
    def follows_tracks(self) -> bool:
        """Whether the collector needs to publish tracked boxes (:meth:`track`)."""
        return self.every > 1 or self.classify_every > 1

    def observe(self, frame: Frame) -> Motion | None:
        """Nothing to measure ahead of the pass (capture thread)."""
        return None

    def track(self, tracked: list[Tracked]) -> None:
        """Publish the tracked faces' latest boxes (collector thread): replaced whole."""
        self._tracked = tuple(tracked)

    def find(self, detector: YuNetDetector, frame: Frame, order: int,
             motion: Motion | None = None) -> Found:
        """The faces in ``frame`` and which of them keep their last classification."""
        plan = plan_pass(order, self._tracked, self.every, self.classify_every)
        if not plan.detect:
            self.stats.add(Count.DETECT_KEPT, len(plan.reuse))
            return Found(list(plan.reuse), [True] * len(plan.reuse), searched=False)
        t0 = time.perf_counter()
        found = detector.find(frame.gray, frame.small_gray)
        self.stats.record("detect", time.perf_counter() - t0)
        self.stats.add(Count.DETECT_FULL)
        boxes = [d.box for d in found]
        turns: list[float | None] = [
            turn((d.landmarks.right_eye, d.landmarks.left_eye), d.landmarks.nose)
            for d in found]
        eyes = ([(d.landmarks.right_eye, d.landmarks.left_eye) for d in found]
                if self.level_eyes else None)
        return Found(boxes, reused(boxes, plan), turns=turns, eyes=eyes)
