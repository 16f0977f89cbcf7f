"""YuNet, OpenCV's learned face detector (``cv2.FaceDetectorYN``), behind the detector interface.

One pass over a reduced copy of the frame finds every face in it, turned, tilted or small,
at a cost that does not depend on how many faces there are. The copy is sized so a
``min_size`` face is :data:`INPUT_FACE_PX` pixels wide in it (24: hand-boxed group photos
and pasted portraits showed faces of 16-20 pixels at YuNet's input missed or scored under
the 0.6 threshold, faces of about 25 found), unless ``detect_width`` caps it. Boxes are
reframed as the cascade frames a face (a square about 1.2 times YuNet's width, on the
same centre; measured on the bundled clip), so crops look like the faces the classifier
was trained on whichever detector found them. Each face also comes with
its five landmarks (eyes, nose tip, mouth corners) and a score.

The model file is not in the repository: ``python -m edge.fetch yunet`` puts it where
``detector.model`` points (see :mod:`edge.fetch`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectorConfig
from edge.vision.boxes import Box
from edge.vision.faces import DetectorError

log = logging.getLogger(__name__)

#: Width, in input pixels, of a ``min_size`` face in the copy YuNet searches.
INPUT_FACE_PX = 24

#: The cascade's square box around a face, as multiples of YuNet's box width and height
#: (YuNet's box is about 0.74 as wide as it is tall; the cascade's is square and
#: 1.2 times as wide). Medians over the bundled clip; spread about 0.03.
_SQUARE_OF_WIDTH = 1.20
_SQUARE_OF_HEIGHT = 0.89

#: Faces kept per pass (YuNet's ``top_k``): far above any room.
_TOP_K = 500

#: The sha256 of the model file this code is measured with (opencv_zoo's
#: face_detection_yunet_2026may.onnx); :mod:`edge.fetch` checks downloads against it.
MODEL_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"


@dataclass(frozen=True)
class Landmarks:
    """Five points of a face, full-resolution pixels: eyes (the person's right, then
    left, as seen in the image: left one first), nose tip, mouth corners."""

    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth_right: tuple[float, float]
    mouth_left: tuple[float, float]


@dataclass(frozen=True)
class Detection:
    """One face YuNet found: its box as the cascade frames a face, YuNet's own box, the
    landmarks and the score (0..1)."""

    box: Box
    raw: tuple[float, float, float, float]
    landmarks: Landmarks
    score: float


def square_box(x: float, y: float, w: float, h: float) -> Box:
    """YuNet's box ``(x, y, w, h)`` reframed as the cascade's square around the same face."""
    side = (_SQUARE_OF_WIDTH * w + _SQUARE_OF_HEIGHT * h) / 2
    cx, cy = x + w / 2, y + h / 2
    return Box(round(cx - side / 2), round(cy - side / 2), round(side), round(side))


def input_size(width: int, height: int, min_size: int, detect_width: int = 0) -> tuple[int, int]:
    """The size of the copy YuNet searches in a ``width`` x ``height`` frame: a
    ``min_size`` face :data:`INPUT_FACE_PX` wide, never larger than the frame, at most
    ``detect_width`` wide when that is set."""
    scale = min(1.0, INPUT_FACE_PX / min_size)
    if detect_width:
        scale = min(scale, detect_width / width)
    # Even sides, as a camera's reduced stream has them (Picamera2's lores).
    w = max(32, round(width * scale) // 2 * 2)
    return w, max(32, round(height * w / width) // 2 * 2)


class YuNetDetector:
    """Finds faces with YuNet; one per worker thread (OpenCV's detector is not shared).

    Args:
        cfg: detector settings (``model``, ``min_size``, ``detect_width``,
            ``score_threshold``, ``nms_threshold``).

    Raises:
        DetectorError: the model file is missing or not a YuNet model; the message names
            the path, the expected sha256 and the command that fetches it.
    """

    kind = "yunet"

    def __init__(self, cfg: DetectorConfig) -> None:
        path = Path(cfg.model)
        if not path.is_file():
            raise DetectorError(
                f"detector.model: {path}: no such file; fetch it with 'python -m edge.fetch "
                f"yunet' (sha256 {MODEL_SHA256[:16]}...), or copy it there")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320),
                                                  cfg.score_threshold, cfg.nms_threshold,
                                                  _TOP_K)
        except cv2.error:
            raise DetectorError(f"detector.model: {path}: not a YuNet ONNX model; fetch it "
                                "with 'python -m edge.fetch yunet'") from None
        self.cfg = cfg
        self.path = path
        self._size = (320, 320)

    def smallest(self, width: int) -> int:
        """The smallest face side searched in a frame ``width`` wide: ``min_size``, or
        more when ``detect_width`` caps the copy."""
        w, _ = input_size(width, 1, self.cfg.min_size, self.cfg.detect_width)
        return max(self.cfg.min_size, round(INPUT_FACE_PX * width / w))

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[Box]:
        """Face boxes in ``gray``'s pixels, largest first (cascade framing)."""
        return [d.box for d in self.find(gray, small)]

    def find(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[Detection]:
        """Every face of at least ``min_size`` in ``gray``, largest first.

        Args:
            gray: full-resolution gray frame.
            small: a reduced copy the source made already; used when it is exactly the
                size YuNet searches.
        """
        fh, fw = gray.shape[:2]
        size = input_size(fw, fh, self.cfg.min_size, self.cfg.detect_width)
        if small is not None and (small.shape[1], small.shape[0]) == size:
            image = small
        elif size == (fw, fh):
            image = gray
        else:
            image = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        if rows is None:
            return []
        sx, sy = fw / size[0], fh / size[1]
        found = []
        for r in rows:
            raw = (float(r[0] * sx), float(r[1] * sy), float(r[2] * sx), float(r[3] * sy))
            box = square_box(*raw)
            if box.w < self.cfg.min_size:
                continue
            points = [(float(r[4 + 2 * i] * sx), float(r[5 + 2 * i] * sy)) for i in range(5)]
            found.append(Detection(box, raw, Landmarks(*points), float(r[14])))
        found.sort(key=lambda d: d.box.w, reverse=True)
        return found
