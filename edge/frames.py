"""A captured frame: what sources deliver and every later stage reads.

Defined here, beside the other shared contracts (events, stats), so the detector, the
web page and the annotator read frames without importing a source adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        seq: sequence number from the source, from 0.
        ts: wall-clock capture time (seconds since the epoch).
        mono: monotonic capture time, for latency measurements.
        gray: full-resolution 8-bit grayscale image.
        image: the colour (BGR) image when the source has one, else ``None``.
        small_gray: an already downscaled grayscale frame for detection (Picamera2 lores),
            or ``None`` to let the detector downscale ``gray``.
        name: file name for still images, else ``""``.
        gray_s: seconds spent converting to gray (reported as its own stage).
    """

    seq: int
    ts: float
    mono: float
    gray: np.ndarray
    image: np.ndarray | None = None
    small_gray: np.ndarray | None = None
    name: str = ""
    gray_s: float = 0.0
