"""Face boxes and all the arithmetic on them, in one place.

A :class:`Box` is ``(x, y, w, h)`` in full-resolution pixels: a small immutable tuple, so
it unpacks, compares and serialises (``list(box)``) like the plain tuples it replaces.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """An axis-aligned box: top-left corner ``(x, y)``, width ``w`` and height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


def intersection(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """The area two ``(x, y, w, h)`` boxes share (0 when they do not overlap)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


#: Overlap (IoU) at which two boxes are taken for one face: a face found twice in one
#: frame, or the same face in the next frame or a plan's known box.
SAME_FACE_IOU = 0.3


def dedupe(boxes: Iterable[Box], threshold: float = SAME_FACE_IOU) -> list[Box]:
    """``boxes`` without the smaller of any two that overlap by more than ``threshold`` IoU."""
    kept: list[Box] = []
    for b in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
        if all(iou(b, k) < threshold for k in kept):
            kept.append(b)
    return kept


def widen(box: tuple[int, ...], margin: float) -> Box:
    """``box`` grown by ``margin`` of its width and height on every side (may leave the frame)."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    return Box(x - dx, y - dy, w + 2 * dx, h + 2 * dy)


def touches_any(window: tuple[int, ...], boxes: Iterable[tuple[int, ...]]) -> bool:
    """Whether any of ``boxes`` overlaps ``window``."""
    return any(intersection(window, b) for b in boxes)


def mostly_inside(box: tuple[int, ...], window: tuple[int, ...]) -> bool:
    """Whether at least half of ``box`` lies in ``window``."""
    return 2 * intersection(box, window) >= box[2] * box[3] > 0


def enclosing(a: tuple[int, ...], b: tuple[int, ...]) -> Box:
    """The smallest box that holds both ``a`` and ``b``."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return Box(x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0)


def centre_distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The distance in pixels between the centres of two boxes."""
    return math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)


def crop_box(box: tuple[int, ...], frame_shape: tuple[int, ...], margin: float) -> Box:
    """The square around ``box`` widened by ``margin`` per side, kept inside the frame."""
    x, y, w, h = box
    fh, fw = frame_shape[:2]
    side = min(round(max(w, h) * (1.0 + 2.0 * margin)), fw, fh)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = round(min(max(cx - side / 2.0, 0), fw - side))
    y0 = round(min(max(cy - side / 2.0, 0), fh - side))
    return Box(x0, y0, side, side)


def iou_matrix(a: Sequence[tuple[int, ...]], b: Sequence[tuple[int, ...]]) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union of every box of ``a`` with every box
    of ``b``: one array operation where a crowd's faces would cost a Python loop each."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    p, q = np.asarray(a, np.float64)[:, None, :], np.asarray(b, np.float64)[None, :, :]
    ix = np.clip(np.minimum(p[..., 0] + p[..., 2], q[..., 0] + q[..., 2])
                 - np.maximum(p[..., 0], q[..., 0]), 0, None)
    iy = np.clip(np.minimum(p[..., 1] + p[..., 3], q[..., 1] + q[..., 3])
                 - np.maximum(p[..., 1], q[..., 1]), 0, None)
    inter = ix * iy
    union = p[..., 2] * p[..., 3] + q[..., 2] * q[..., 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
