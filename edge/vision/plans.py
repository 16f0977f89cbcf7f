"""What the detection schedule hands on and decides per frame: the tracked faces the
collector publishes (:class:`Tracked`), a frame's plan for its known faces (:class:`Plan`),
the faces it found (:class:`Found`), and the one-line description of a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import DetectorConfig, MotionConfig
from edge.vision.boxes import SAME_FACE_IOU, Box, iou


@dataclass(frozen=True)
class Tracked:
    """A face the tracker follows, as published to the workers.

    Attributes:
        box: its latest box.
        steady: confirmed and found in its latest frame. Only a steady face may be
            followed or keep its box without a search; a new one, or one that was missed,
            is searched for by the cascade every frame until it is confirmed, found again
            or leaves (so a false detection cannot be confirmed or live on unseen).
    """

    box: Box
    steady: bool
    id: int = 0


@dataclass(frozen=True)
class Plan:
    """What one frame does for each known face (``DetectionSchedule._plan``)."""

    moving: list[Box]  # searched by the cascade in a window around the last box
    followed: list[Box]  # followed by template, then checked in a tight window
    kept: list[Box]  # boxes not searched by the cascade in this frame
    reuse: list[Box]  # of those, the ones whose last classification stands in this frame


@dataclass(frozen=True)
class Found:
    """The faces in one frame, as the schedule found them.

    Attributes:
        boxes: face boxes, full-resolution pixels.
        reuse: per box, True when it is a steady face followed (or kept) without the
            cascade in this frame and ``classify_every`` lets its last probabilities
            stand in for a new classification.
        searched: False when no detector looked at the frame at all (a per-frame
            detector between its passes): the boxes are kept faces, and a face without
            one was not missed.
    """

    boxes: list[Box]
    reuse: list[bool]
    searched: bool = True
    #: per box, how far the face is turned (:func:`edge.vision.quality.turn`), when the
    #: detector gives landmarks
    turns: list[float | None] | None = None
    #: per box, the eye centres its crop is levelled by (YuNet with detector.level_eyes)
    eyes: list | None = None


def held(box: Box, plan: Plan) -> bool:
    """Whether ``box``, kept without the cascade, may keep its last classification: its
    face's phase skips classification in this frame (a followed face's box moved, so it
    is matched to the known box it came from by overlap)."""
    return any(iou(box, r) >= SAME_FACE_IOU for r in plan.reuse)


def describe_detection(detector: DetectorConfig, motion: MotionConfig) -> str:
    """One line saying where the configured detector looks in each frame."""
    if detector.kind == "yunet":
        classify = (f"steady faces classified on one pass in {motion.classify_every}"
                    if motion.classify_every > 1 else "every face classified on every pass")
        passes = ("every frame" if detector.pass_every == 1 else
                  f"one frame in {detector.pass_every} (every frame while a face is new or "
                  "missed), steady faces kept in between")
        return f"yunet: a whole-frame pass on {passes}; {classify}"
    return describe_schedule(detector.full_every, motion)


def describe_schedule(full_every: int, motion: MotionConfig | None) -> str:
    """One line saying which schedule runs with these settings (logs, the benchmark)."""
    periodic = (f"a full search spread over every {full_every} frame(s), windows around "
                "the faces in each" if full_every > 1 else "full search every frame")
    if motion is None or not motion.enabled:
        return f"periodic: {periodic}"
    safety = (f"a full search spread over {motion.safety_slices} of every "
              f"{motion.safety_every} frames (more on a frame larger than VGA)"
              if motion.safety_every else "no safety search")
    still = (f", still ones checked every {motion.still_check_every}"
             if motion.still_check_every > 1 else "")
    faces = (f"faces followed by template and searched every {motion.search_every} frames"
             if motion.search_every > 1 else "faces searched every frame")
    if motion.classify_every > 1:
        faces += f", classified every {motion.classify_every} while followed"
    return (f"motion first: {motion.width}-px motion frame, threshold {motion.threshold:g}; "
            f"{faces}{still}; moving areas searched; {safety}; when moving areas "
            f"cover over {motion.max_share:.0%} of the frame: {periodic}")
