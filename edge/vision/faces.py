"""Haar-cascade face detection on a downscaled gray frame, and FER-like face crops.

Detection runs on a frame shrunk to ``detect_width`` (or on the source's own small
frame, e.g. the Pi's lores stream); boxes are mapped back to full resolution. Crops are
squares around the box widened by ``margin``, which is how FER-2013 faces are framed
(the whole face with a little forehead and chin, centred).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectorConfig
from edge.preprocessing import FACE_SIZE, resize_face
from edge.vision.boxes import Box, crop_box, dedupe

log = logging.getLogger(__name__)

#: Cascade names accepted besides a file path.
BUILTIN_CASCADES = {
    "default": "haarcascade_frontalface_default.xml",
    "alt2": "haarcascade_frontalface_alt2.xml",
}

#: Face width, in pixels, that windows around tracked faces are shrunk to before the
#: cascade runs: well above its 24-pixel window, small enough to be cheap.
REGION_FACE_PX = 64


class DetectorError(RuntimeError):
    """The cascade file is missing or not a cascade."""


def cascade_path(name: str) -> Path:
    """Resolve ``default``/``alt2`` (OpenCV's data dir), ``lbp`` or a path to a cascade file."""
    if name in BUILTIN_CASCADES:
        return Path(cv2.data.haarcascades) / BUILTIN_CASCADES[name]
    if name == "lbp":
        # opencv-python ships the Haar files only; the LBP one comes from the OpenCV
        # sources or the distribution's opencv-data package.
        for candidate in (Path(cv2.data.haarcascades).parent / "lbpcascades",
                          Path("/usr/share/opencv4/lbpcascades"),
                          Path("/usr/share/opencv/lbpcascades")):
            f = candidate / "lbpcascade_frontalface_improved.xml"
            if f.is_file():
                return f
        raise DetectorError("detector.cascade: lbp cascade not found; install the "
                            "opencv-data package or give the path to "
                            "lbpcascade_frontalface_improved.xml")
    return Path(name)


class FaceDetector:
    """Finds frontal faces in gray frames.

    Args:
        cfg: detector settings (cascade, detection width, scale step, neighbours, minimum
            face size in full-resolution pixels, crop margin, histogram equalisation).
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        path = cascade_path(cfg.cascade)
        if not path.is_file():
            raise DetectorError(f"detector.cascade: {path}: no such cascade file")
        try:
            self._cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as exc:
            raise DetectorError(f"detector.cascade: {path}: not a valid cascade file "
                                f"({str(exc).strip().splitlines()[-1]})") from None
        if self._cascade.empty():
            raise DetectorError(f"detector.cascade: {path}: not a valid cascade file")
        self.cfg = cfg
        self.path = path
        #: The cascade's base window side in pixels (OpenCV scans every second position
        #: for windows up to twice this, every position past that).
        self.base = int(self._cascade.getOriginalWindowSize()[0])
        self._small: np.ndarray | None = None  # reused downscale buffer

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[Box]:
        """Face boxes ``(x, y, w, h)`` in ``gray``'s pixels, largest first.

        Args:
            gray: full-resolution gray frame.
            small: an already downscaled version of ``gray`` (same aspect), if the source
                has one; otherwise ``gray`` is shrunk to ``detect_width`` here.
        """
        _h, w = gray.shape[:2]
        if small is None:
            small = self.downscale(gray)
        return self.search(small, w / small.shape[1])

    def detect_around(self, gray: np.ndarray, faces: list[Box], margin: float,
                      sizes: tuple[float, float] = (0.7, 1.4),
                      face_px: int = REGION_FACE_PX) -> list[Box]:
        """Re-detect known faces in small windows around their last boxes.

        Each window is the box widened by ``margin`` per side, shrunk so the face is about
        ``face_px`` wide, and searched only for faces between ``sizes`` times the last
        size: a handful of cascade scales on a few thousand pixels instead of the whole
        frame. Boxes come back in full-frame pixels, overlaps merged.
        """
        found: list[Box] = []
        fh, fw = gray.shape[:2]
        for x, y, w, h in faces:
            dx, dy = int(w * margin), int(h * margin)
            x0, y0 = max(0, x - dx), max(0, y - dy)
            x1, y1 = min(fw, x + w + dx), min(fh, y + h + dy)
            if x1 - x0 < 24 or y1 - y0 < 24:
                continue
            s = min(1.0, face_px / max(w, 1))
            roi = gray[y0:y1, x0:x1]
            if s < 1.0:
                roi = shrink(roi, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))))
            lo = max(20, int(sizes[0] * w * s))
            hi = max(lo + 1, int(sizes[1] * w * s))
            img = cv2.equalizeHist(roi) if self.cfg.equalize else roi
            if min(img.shape[:2]) < lo:
                continue
            rects = self._cascade.detectMultiScale(
                img, scaleFactor=self.cfg.scale_factor, minNeighbors=self.cfg.min_neighbors,
                minSize=(lo, lo), maxSize=(hi, hi))
            inv = (x1 - x0) / roi.shape[1]
            found += [Box(round(rx * inv) + x0, round(ry * inv) + y0, round(rw * inv),
                          round(rh * inv)) for (rx, ry, rw, rh) in rects]
        return dedupe(found)

    def downscale(self, gray: np.ndarray) -> np.ndarray:
        """``gray`` shrunk to ``detect_width`` (a reused buffer; ``gray`` when narrower)."""
        h, w = gray.shape[:2]
        dw = min(self.cfg.detect_width, w)
        if dw == w:
            return gray
        dh = max(1, round(h * dw / w))
        if self._small is None or self._small.shape != (dh, dw):
            self._small = np.empty((dh, dw), np.uint8)
        shrink(gray, (dw, dh), self._small)
        return self._small

    def search(self, small: np.ndarray, scale: float, region: Box | None = None,
               sizes: tuple[int, int] | None = None) -> list[Box]:
        """Faces in all or part of a downscaled frame, in full-resolution pixels, largest first.

        Args:
            small: the frame shrunk by ``scale`` (full-resolution pixels per small pixel).
            scale: full width / small width.
            region: the part to search, in full-resolution pixels (``None``: all of it).
            sizes: the smallest and largest face side to look for, in ``small``'s pixels
                (``None``: from ``min_size`` up). A slice of the sizes is a slice of the
                cascade's scale pyramid, and of its cost.
        """
        ox = oy = 0
        img = small
        if region is not None:
            x, y, w, h = region
            ox, oy = max(0, int(x / scale)), max(0, int(y / scale))
            img = small[oy:min(small.shape[0], int(np.ceil((y + h) / scale))),
                        ox:min(small.shape[1], int(np.ceil((x + w) / scale)))]
        min_side = max(12, int(self.cfg.min_size / scale))
        lo, hi = sizes if sizes is not None else (min_side, 0)
        lo = max(lo, min_side)
        if min(img.shape[:2]) < lo or (hi and hi < lo):
            return []
        if self.cfg.equalize:
            img = cv2.equalizeHist(img)
        rects = self._cascade.detectMultiScale(
            img, scaleFactor=self.cfg.scale_factor, minNeighbors=self.cfg.min_neighbors,
            minSize=(lo, lo), maxSize=(hi, hi) if hi else (0, 0))
        boxes = [Box(round((rx + ox) * scale), round((ry + oy) * scale), round(rw * scale),
                     round(rh * scale)) for (rx, ry, rw, rh) in rects]
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes


def shrink(image: np.ndarray, size: tuple[int, int],
           dst: np.ndarray | None = None) -> np.ndarray:
    """``image`` shrunk to ``size`` (width, height) by area averaging, at a cost that does
    not grow with ``image``'s resolution.

    Averaging every source pixel costs in proportion to the source: a 720p camera's face
    window would cost four times a VGA one's for the same result. Past three source
    pixels per output pixel, every other (third, ...) row and column is skipped first (a
    free view), and the rest averaged: enough samples per output pixel for the cascade.
    """
    step = int(min(image.shape[1] / size[0], image.shape[0] / size[1]) // 3)
    if step > 1:
        image = image[::step, ::step]
    return cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_AREA)


def extract_faces(gray: np.ndarray, boxes: list[Box], margin: float,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Model-ready ``(N, 48, 48)`` uint8 faces for ``boxes`` (written into ``out`` if big enough).

    Returns a view of ``out`` (or a new array) with exactly ``len(boxes)`` faces.
    """
    n = len(boxes)
    if out is None or out.shape[0] < n:
        out = np.empty((max(n, 1), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, box in enumerate(boxes):
        x, y, w, h = crop_box(box, gray.shape, margin)
        resize_face(gray[y:y + h, x:x + w], out=out[i])
    return out[:n]
