"""How a whole-frame search is cut into slices of about equal cost, so no frame stalls.

Used by the detection schedule (:mod:`edge.vision.schedule`) for the safety search and
the periodic one on frames larger than VGA.
"""

from __future__ import annotations

import itertools
import math

from edge.vision.faces import FaceDetector

#: What one frame may spend on the whole search, as its number of cascade windows: that
#: of a VGA frame (640x480) searched for faces from 48 pixels, the default camera's, which
#: the periodic schedule does in one frame. A larger frame spreads its search.
_FRAME_BUDGET_SHAPE = (480, 640)


def search_slices(shape: tuple[int, ...], detector: FaceDetector) -> int:
    """Over how many frames a whole search of a ``shape`` frame is spread: its cost over
    that of a VGA frame's (:data:`_FRAME_BUDGET_SHAPE`), rounded up."""
    def cost(h: int, w: int, smallest: int) -> float:
        costs = _size_costs(smallest, min(h, w), detector.cfg.scale_factor, detector.base)[1]
        return h * w * sum(costs)

    h, w = shape[:2]
    budget = cost(*_FRAME_BUDGET_SHAPE, 48)
    return max(1, math.ceil(cost(h, w, detector.smallest(w)) / budget - 0.05))


def slice_due(position: int, slices: int, period: int) -> int | None:
    """Which of ``slices`` slices, spread evenly over a ``period`` of frames, falls on the
    frame at ``position`` (``0..period-1``) of it, or ``None``.

    Slice ``k`` falls on frame ``k * period // slices``: evenly spaced, so the frames
    between two slices let the workers catch up with a live camera instead of several
    slow frames in a row backing up its queue.
    """
    if slices <= 0 or period <= 0:
        return None
    k = -(-position * slices // period)
    return k if k < slices and k * period // slices == position else None


def size_bands(smallest: int, largest: int, factor: float, slices: int,
               base: int = 24) -> list[tuple[int, int]]:
    """Split face sizes ``smallest..largest`` (full-resolution pixels) into ``slices`` bands
    of about equal search cost.

    Each size is searched on its pyramid level (:func:`edge.vision.faces.octaves`), over
    the whole frame shrunk so the window is its ``base``-pixel base: the number of windows
    falls with the size's square, whichever the level. OpenCV places them every second
    pixel up to twice the base and at every pixel past that: four times the windows,
    measured at about three times the time on the talking-head clip with its face blanked
    (the safety search's case). Bands are cut where the
    running cost crosses each ``1/slices`` share, and each overlaps the next by one scale
    step so a face at a boundary still gets the neighbours it needs.
    """
    if largest < smallest:
        return []
    sizes, costs = _size_costs(smallest, largest, factor, base)
    total, run, cut = sum(costs), 0.0, [0]
    for i, c in enumerate(costs):
        run += c
        if run >= total * len(cut) / slices and len(cut) < slices and i + 1 < len(sizes):
            cut.append(i + 1)
    cut.append(len(sizes))
    bands = []
    for a, b in itertools.pairwise(cut):
        lo = math.floor(sizes[max(0, a - 1)]) if a else smallest
        hi = math.ceil(sizes[b - 1] * factor) if b < len(sizes) else largest
        bands.append((lo, min(hi, largest)))
    return bands


def _size_costs(smallest: float, largest: float, factor: float,
                base: int) -> tuple[list[float], list[float]]:
    """The window sizes of a search from ``smallest`` to ``largest`` and each one's cost
    per frame pixel (see :func:`size_bands`)."""
    sizes = [float(smallest)]
    while sizes[-1] * factor <= largest:
        sizes.append(sizes[-1] * factor)
    return sizes, [(3.0 if s > 2 * base else 1.0) / (s * s) for s in sizes]
