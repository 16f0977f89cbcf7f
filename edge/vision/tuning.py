"""The detection schedule's tuning: the numbers behind its choices, in one named record.

The ``motion.*`` and ``detector.*`` keys are what a user sets; these are what the schedule
was tuned with (on the talking-head clip and the 4x3 crowd made from it, see
docs/benchmarks.md) and holds fixed. A test or an experiment passes another
:class:`ScheduleTuning` to :class:`~edge.vision.schedule.DetectionSchedule`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleTuning:
    """How the schedule searches between and around the faces it knows.

    Attributes:
        motion_pad: padding around a moving area before it is searched, per side, as a
            fraction of its size.
        lost_pad: how far around a known face that its window missed the wider search
            reaches, per side.
        follow_reach: how far a face may move between frames when followed, per side, in
            face widths.
        follow_match: the template match below which the cascade searches for a followed
            face instead.
        check_margin: the cascade's window around a face just followed to where it is
            now, per side, in face widths. Tighter than ``region_margin`` (which allows
            for a box a few frames old). Every window over a face passes most of the
            cascade's stages, so the check costs the number of windows it places on the
            face.
        check_sizes: the face sizes that window looks for, relative to the followed box.
            Narrower sizes cost less but missed the face often enough on the
            talking-head clip to need wider searches.
        check_face_px: the face's width once that window is shrunk: at 56 pixels about
            three quarters of what 64 costs; smaller faces missed too often.
        fresh_frames: how many frames old the cascade's latest find of a face may be for
            its window to be the tight check's (a face not yet steady, found by the
            cascade itself every frame); an older box gets the wide ``region_margin``
            window, which allows for its face having moved.
        recent_frames: for how many frames a face a worker just found is looked for around
            its box, whether or not the tracker has it yet. The tracker hears of a find
            only when its frame is collected, after the next frames are already being
            searched by the other workers; a face found by the safety search in a still
            scene would otherwise be missed by those frames and never be seen the frames
            in a row it needs to count.
    """

    motion_pad: float = 0.5
    lost_pad: float = 1.0
    follow_reach: float = 0.25
    follow_match: float = 0.6
    check_margin: float = 0.25
    check_sizes: tuple[float, float] = (0.8, 1.25)
    check_face_px: int = 56
    fresh_frames: int = 2
    recent_frames: int = 8


#: The tuning the device runs with.
TUNING = ScheduleTuning()
