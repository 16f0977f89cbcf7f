"""Following a known face between cascade searches, by template matching on a small copy.

A cascade search around a face costs milliseconds (every window over the face passes
many of its stages); finding where the same face went in the next frame costs a fraction
of one: the face as the cascade last found it is kept as a small template
(:data:`TEMPLATE_PX` wide), and the area around its box, shrunk by the same factor, is
searched for the best normalised match. The box keeps its size and moves with the face.
A poor match (the face turned, was covered, or changed a lot) is reported as such, and
the caller searches with the cascade instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.boxes import Box
from edge.vision.faces import shrink

#: Template width in pixels: enough detail to lock onto a face, small enough to be cheap.
TEMPLATE_PX = 32


@dataclass(frozen=True)
class Template:
    """A face as the cascade found it in one frame."""

    order: int
    box: Box
    patch: np.ndarray  # TEMPLATE_PX x TEMPLATE_PX gray


def cut(gray: np.ndarray, box: Box, order: int) -> Template | None:
    """The template of ``box`` in ``gray`` (the ``order``-th frame); ``None`` if it is
    not inside the frame."""
    x, y, w, h = box
    if w < 8 or h < 8 or x < 0 or y < 0 or x + w > gray.shape[1] or y + h > gray.shape[0]:
        return None
    patch = shrink(gray[y:y + h, x:x + w], (TEMPLATE_PX, TEMPLATE_PX))
    return Template(order, box, patch)


def follow(gray: np.ndarray, template: Template, reach: float) -> tuple[Box, float]:
    """Where ``template``'s face is in ``gray``: its moved box and the match score
    (normalised correlation, 1 = identical; below ~0.6 it is probably not that face).

    Args:
        gray: the full-resolution gray frame to search.
        template: the face as last found.
        reach: how far it may have moved, per side, as a fraction of its size.
    """
    x, y, w, h = template.box
    fh, fw = gray.shape[:2]
    dx, dy = max(1, round(w * reach)), max(1, round(h * reach))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(fw, x + w + dx), min(fh, y + h + dy)
    s = TEMPLATE_PX / w
    area_w, area_h = round((x1 - x0) * s), round((y1 - y0) * s)
    if area_w <= TEMPLATE_PX or area_h <= TEMPLATE_PX:
        return template.box, 0.0
    # INTER_LINEAR: the area is searched for a shape, and averaging every pixel of a
    # large face's area (INTER_AREA) would cost more than the match itself.
    area = cv2.resize(gray[y0:y1, x0:x1], (area_w, area_h), interpolation=cv2.INTER_LINEAR)
    scores = cv2.matchTemplate(area, template.patch, cv2.TM_CCOEFF_NORMED)
    _, best, _, (mx, my) = cv2.minMaxLoc(scores)
    # One template pixel is w / TEMPLATE_PX frame pixels: place the peak between pixels
    # by the parabola through it and its neighbours.
    fx = mx + _vertex(scores[my, mx - 1:mx + 2]) if 0 < mx < scores.shape[1] - 1 else mx
    fy = my + _vertex(scores[my - 1:my + 2, mx]) if 0 < my < scores.shape[0] - 1 else my
    nx = min(max(0, x0 + round(fx / s)), fw - w)
    ny = min(max(0, y0 + round(fy / s)), fh - h)
    return (nx, ny, w, h), float(best)


def _vertex(three: np.ndarray) -> float:
    """Offset (-0.5..0.5) of the top of the parabola through three equally spaced values."""
    a, b, c = (float(v) for v in three)
    curve = a - 2 * b + c
    return 0.0 if curve >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / curve))
