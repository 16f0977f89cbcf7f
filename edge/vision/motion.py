"""Where the picture changed: motion boxes from a tiny gray frame, in a fraction of a millisecond.

Each frame is shrunk to ``width`` pixels across (a bilinear shrink samples a few source
pixels per output pixel, so the cost does not grow with the camera's resolution), lightly
blurred against sensor noise, and compared with a running average of the previous tiny
frames. Pixels that differ by more than ``threshold`` gray levels are motion; they are
dilated so the parts of one moving thing join, and each connected blob becomes a box in
full-resolution pixels. The running average (rather than the previous frame alone) also
catches slow moves, and keeps showing a change for a few frames after it happened: a face
pasted into a still scene stays "moving" long enough to be confirmed.

The detector runs in the capture thread, which sees frames in order; one instance per
source. Nothing here is shared between threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config import MotionConfig
from edge.vision.boxes import Box, enclosing, intersection

#: Weight of the newest tiny frame in the running average: a change fades from the
#: average over about 1 / _AVERAGE frames, so a still scene settles within a few frames.
_AVERAGE = 0.25

#: Frames after a (re)start that count as new: they get a full search, so the faces
#: already in view are found in each of them (in parallel by the workers, who cannot yet
#: know what the others found) and are confirmed at once.
_SETTLE_FRAMES = 3

#: Dilation that joins the parts of one moving object (in tiny-frame pixels).
_JOIN = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class Motion:
    """The motion found in one frame.

    Attributes:
        boxes: moving blobs' boxes in full-resolution pixels, largest first (the schedule
            pads and merges them into areas to search: :func:`search_regions`).
        share: fraction of the frame that moved (0..1).
        first: True for the first frames of a scene (the start, or a new frame size):
            treat all of it as new.
    """

    boxes: tuple[Box, ...] = ()
    share: float = 0.0
    first: bool = False


class MotionDetector:
    """Finds moving areas by comparing each frame with a running average of the last ones.

    Args:
        cfg: tiny-frame width, gray-level threshold and smallest blob.
    """

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._average: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._seen = 0  # frames since the last (re)start

    def update(self, gray: np.ndarray, shape: tuple[int, ...] | None = None) -> Motion:
        """Compare ``gray`` with the scene so far.

        Args:
            gray: the gray frame (full resolution, or a smaller copy such as the Pi's lores).
            shape: the full-resolution frame's shape, when ``gray`` is a smaller copy; the
                boxes come back in its pixels.
        """
        h, w = (shape or gray.shape)[:2]
        tw = min(self.cfg.width, gray.shape[1])
        th = max(1, round(gray.shape[0] * tw / gray.shape[1]))
        tiny = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_LINEAR)
        tiny = cv2.GaussianBlur(tiny, (3, 3), 0).astype(np.float32)
        if self._average is None or self._shape != (h, w):
            self._average, self._shape, self._seen = tiny, (h, w), 0
        diff = cv2.absdiff(tiny, self._average)
        cv2.accumulateWeighted(tiny, self._average, _AVERAGE)
        self._seen += 1
        if self._seen <= _SETTLE_FRAMES:
            return Motion(((0, 0, w, h),), 1.0, first=True)
        mask = cv2.dilate((diff > self.cfg.threshold).astype(np.uint8), _JOIN)
        share = float(np.count_nonzero(mask)) / mask.size
        if share == 0.0:
            return Motion()
        n, _, blobs, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        sx, sy = w / tw, h / th
        boxes = [_scaled(blobs[i], sx, sy) for i in range(1, n)
                 if blobs[i, cv2.CC_STAT_AREA] >= self.cfg.min_area]
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return Motion(tuple(boxes), share)


def _scaled(blob: np.ndarray, sx: float, sy: float) -> Box:
    x, y, bw, bh = (int(v) for v in blob[:4])
    return Box(int(x * sx), int(y * sy), int(np.ceil(bw * sx)), int(np.ceil(bh * sy)))


def search_regions(boxes: tuple[Box, ...] | list[Box], shape: tuple[int, ...], pad: float,
                   least: int) -> list[Box]:
    """Areas to search for faces around motion ``boxes``: each padded by ``pad`` of its size
    per side and grown to at least ``least`` pixels a side (a face moving only its mouth
    still gets a window big enough to hold the whole face), moved inside the frame, and
    overlapping areas merged into one."""
    fh, fw = shape[:2]
    grown: list[Box] = []
    for x, y, w, h in boxes:
        side_w = min(fw, round(max(w * (1 + 2 * pad), least)))
        side_h = min(fh, round(max(h * (1 + 2 * pad), least)))
        # Shifted, not cut, at the frame's edges: a face entering at the edge needs the
        # whole window.
        x0 = min(max(0, round(x + w / 2 - side_w / 2)), fw - side_w)
        y0 = min(max(0, round(y + h / 2 - side_h / 2)), fh - side_h)
        grown.append(Box(x0, y0, side_w, side_h))
    # A handful of areas: merging the first overlapping pair until none is left is
    # cheaper than anything smarter.
    while pair := next(((i, j) for i in range(len(grown)) for j in range(i + 1, len(grown))
                        if intersection(grown[i], grown[j])), None):
        i, j = pair
        grown[i] = enclosing(grown[i], grown.pop(j))
    return grown
