"""Which face crops are worth classifying.

The classifier was trained on frontal 48x48 faces. A face much smaller than that (a back
row), blurred past anything in its training faces (motion, focus), or turned far from the
camera (known from YuNet's landmarks) gives a guess, not a reading. Such a face is still
tracked and counted; its crop is not classified, and the tracker withholds its emotion
until a usable crop arrives (:class:`edge.vision.tracking.Tracker`), saying why.

Thresholds (``quality`` in the config):
- ``min_face``: box side in full-resolution pixels (36: three quarters of the model's
  input; below it the crop is mostly upscaling);
- ``min_sharpness``: variance of the Laplacian of the 48x48 crop. FER-2013's PublicTest
  faces have 317 at their 0.5th percentile and 2,072 at the median; the same faces
  blurred by a Gaussian of sigma 1 have a median of 149 and of sigma 1.7 a median of 34;
  100 withholds faces blurred past almost every training face;
- ``max_turn``: how far the nose tip sits from the point between the eyes, as a share of
  the distance between the eyes (0 facing the camera; about 0.5 at 45 degrees of yaw;
  YuNet only).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from edge.config import QualityConfig
from edge.vision.boxes import Box

Withheld = Literal["small", "blurred", "turned"]


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a gray crop (higher: sharper)."""
    # 16-bit holds a uint8 image's Laplacian exactly, at half the cost of float64.
    _, sd = cv2.meanStdDev(cv2.Laplacian(crop, cv2.CV_16S))
    return float(sd[0, 0]) ** 2


def turn(eyes: tuple[tuple[float, float], tuple[float, float]],
         nose: tuple[float, float]) -> float:
    """The nose tip's offset from the point between the eyes, in eye distances."""
    (ax, ay), (bx, by) = eyes
    span = float(np.hypot(bx - ax, by - ay))
    if span <= 0:
        return float("inf")
    mid = ((ax + bx) / 2, (ay + by) / 2)
    # The offset along the line through the eyes: yaw, not the nose's natural drop.
    along = ((nose[0] - mid[0]) * (bx - ax) + (nose[1] - mid[1]) * (by - ay)) / span
    return abs(along) / span


def judge(box: Box, crop: np.ndarray, cfg: QualityConfig,
          turned: float | None = None) -> Withheld | None:
    """Why the crop of ``box`` should not be classified, or ``None`` when it is usable.

    Args:
        box: the face's box, full-resolution pixels.
        crop: its model-ready 48x48 crop.
        cfg: the thresholds.
        turned: :func:`turn` of its landmarks, when the detector gives them.
    """
    if min(box[2], box[3]) < cfg.min_face:
        return "small"
    if turned is not None and turned > cfg.max_turn:
        return "turned"
    if cfg.min_sharpness and sharpness(crop) < cfg.min_sharpness:
        return "blurred"
    return None
