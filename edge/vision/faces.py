"""Haar-cascade face detection on an octave pyramid of the gray frame, and FER-like crops.

The cascade looks for a face with a window of its base size (24 pixels), scanning every
second position for windows up to twice that and every position past it (four times the
windows). So each octave of face sizes is searched on the copy of the frame where those
faces are 24 to 48 pixels wide: faces of 48-96 full-resolution pixels on the half-size
copy, 96-192 on the quarter-size one, and so on (a :class:`Pyramid`, made once per
frame). A face down to ``min_size`` full-resolution pixels is found at any camera
resolution, and each octave costs what its copy's pixels cost: the finest one most.
Boxes come back in full-resolution pixels. Crops are squares around the box widened by
``margin``, which is how FER-2013 faces are framed (the whole face with a little
forehead and chin, centred).
"""

from __future__ import annotations

import logging
import time
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


#: Scale steps by which an octave's search reaches into the next one, so a face at an
#: octave's edge still gets the neighbouring scales its detection is grouped from.
_OCTAVE_OVERLAP_STEPS = 2


class Pyramid:
    """One gray frame and its copies at 1/2, 1/4, ... of its size, each made on first use
    from the one before (area averaging), so a frame is shrunk at most once per level.

    Args:
        gray: the full-resolution gray frame.
        small: a copy the source made already (the Pi's lores stream); used as the level
            whose size it has, when that is a power-of-two fraction of ``gray``'s.
    """

    def __init__(self, gray: np.ndarray, small: np.ndarray | None = None) -> None:
        self.gray = gray
        self.shrink_s = 0.0  # seconds spent making levels (the ``resize`` stage)
        self._levels: dict[int, np.ndarray] = {1: gray}
        if small is not None and small.shape[1] < gray.shape[1]:
            step = gray.shape[1] / small.shape[1]
            if step.is_integer() and int(step) & (int(step) - 1) == 0:
                self._levels[int(step)] = small

    def level(self, step: int) -> np.ndarray:
        """The frame shrunk by ``step`` (a power of two) in each dimension."""
        found = self._levels.get(step)
        if found is None:
            finer = self.level(step // 2)
            t0 = time.perf_counter()
            h, w = finer.shape[:2]
            found = cv2.resize(finer, (max(1, w // 2), max(1, h // 2)),
                               interpolation=cv2.INTER_AREA)
            self.shrink_s += time.perf_counter() - t0
            self._levels[step] = found
        return found


def octaves(lo: float, hi: float, base: int, factor: float) -> list[tuple[int, int, int]]:
    """The pyramid levels that search face sizes ``lo..hi`` (full-resolution pixels).

    Level ``step`` (1, 2, 4, ...) searches faces of ``2 * base * step`` to ``4 * base *
    step`` full-resolution pixels, which are two to four base windows wide there: OpenCV
    scans every position at those scales, which finds a face with all the neighbouring
    detections ``min_neighbors`` asks for (at under twice the base it scans every second
    position: a quarter of the cost, but faces then miss their neighbours). Only faces
    under ``2 * base`` full-resolution pixels are searched that way, on level 1.

    Returns:
        ``(step, min_side, max_side)`` per level: the level's shrink step and the window
        sides searched on it, in its own pixels, each reaching a couple of scale steps
        into the next octave.
    """
    out = []
    reach = factor ** _OCTAVE_OVERLAP_STEPS
    step = 1
    while step * base * 4 <= lo:
        step *= 2
    while (base if step == 1 else 2 * base) * step <= hi:
        a = max(base if step == 1 else 2 * base, lo / step)
        b = min(hi / step, 4 * base * reach)
        if b >= a:
            out.append((step, int(a), int(np.ceil(b))))
        step *= 2
    return out


def finest_step(width: int, min_size: int, detect_width: int = 0, base: int = 24) -> int:
    """The shrink step (a power of two) of the finest pyramid level searched in a frame
    ``width`` wide: the one whose octave (:func:`octaves`) holds ``min_size`` faces, and
    no wider than ``detect_width`` when that is set (0: no cap)."""
    step = 1
    while base * step * 4 <= min_size:
        step *= 2
    while detect_width and width / step > detect_width:
        step *= 2
    return step


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

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[Box]:
        """Face boxes ``(x, y, w, h)`` in ``gray``'s pixels, largest first: a search of the
        whole frame at every size from ``min_size`` up.

        Args:
            gray: full-resolution gray frame.
            small: a copy of ``gray`` the source made already (see :class:`Pyramid`).
        """
        return self.search(Pyramid(gray, small))

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
            if x1 - x0 < self.base or y1 - y0 < self.base:
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

    def finest_step(self, width: int) -> int:
        """The shrink step of the finest pyramid level searched in a frame ``width`` wide
        (:func:`finest_step`)."""
        return finest_step(width, self.cfg.min_size, self.cfg.detect_width, self.base)

    def smallest(self, width: int) -> int:
        """The smallest face side searched in a frame ``width`` wide: ``min_size``, or
        more when ``detect_width`` caps the finest level."""
        step = self.finest_step(width)
        return max(self.cfg.min_size, self.base * (1 if step == 1 else 2 * step))

    def search(self, pyramid: Pyramid, region: Box | None = None,
               sizes: tuple[float, float] | None = None,
               blank: list[Box] | None = None) -> list[Box]:
        """Faces in all or part of a frame, in full-resolution pixels, largest first.

        Args:
            pyramid: the frame and its copies.
            region: the part to search, full-resolution pixels (``None``: all of it).
            sizes: the smallest and largest face side to look for, full-resolution
                pixels (``None``: from ``min_size`` up). A slice of the sizes is a slice
                of the search's cost.
            blank: boxes filled flat before the search (faces searched elsewhere), so
                the cascade rejects them at its first stage.
        """
        gray = pyramid.gray
        fh, fw = gray.shape[:2]
        lo, hi = sizes if sizes is not None else (0.0, float(min(fh, fw)))
        lo = max(lo, self.smallest(fw))
        boxes: list[Box] = []
        for step, min_side, max_side in octaves(lo, hi, self.base, self.cfg.scale_factor):
            img = pyramid.level(step)
            ox = oy = 0
            if region is not None:
                x, y, w, h = region
                ox, oy = max(0, x // step), max(0, y // step)
                img = img[oy:min(img.shape[0], -(-(y + h) // step)),
                          ox:min(img.shape[1], -(-(x + w) // step))]
            if min(img.shape[:2]) < min_side:
                continue
            if blank:
                img = _blanked(img, blank, step, (ox, oy))
            if self.cfg.equalize:
                img = cv2.equalizeHist(img)
            rects = self._cascade.detectMultiScale(
                img, scaleFactor=self.cfg.scale_factor, minNeighbors=self.cfg.min_neighbors,
                minSize=(min_side, min_side), maxSize=(max_side, max_side))
            boxes += [Box(int(rx + ox) * step, int(ry + oy) * step, int(rw) * step,
                          int(rh) * step) for (rx, ry, rw, rh) in rects]
        boxes = dedupe(boxes)
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes


def _blanked(img: np.ndarray, boxes: list[Box], step: int,
             origin: tuple[int, int]) -> np.ndarray:
    """A copy of ``img`` (a level cut at ``origin``) with ``boxes`` (full-resolution
    pixels) filled flat."""
    out = img.copy()
    fill = int(img.mean()) if img.size else 0
    ox, oy = origin
    for x, y, w, h in boxes:
        x0, y0 = max(0, x // step - ox), max(0, y // step - oy)
        x1, y1 = (x + w) // step - ox + 1, (y + h) // step - oy + 1
        if x1 > 0 and y1 > 0:
            out[y0:y1, x0:x1] = fill
    return out


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
                  out: np.ndarray | None = None,
                  eyes: list[Eyes | None] | None = None) -> np.ndarray:
    """Model-ready ``(N, 48, 48)`` uint8 faces for ``boxes`` (written into ``out`` if big enough).

    Args:
        eyes: per box, the eye centres (full-resolution pixels) to level the crop by, or
            ``None`` for a crop as the box stands.

    Returns a view of ``out`` (or a new array) with exactly ``len(boxes)`` faces.
    """
    n = len(boxes)
    if out is None or out.shape[0] < n:
        out = np.empty((max(n, 1), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, box in enumerate(boxes):
        x, y, w, h = crop_box(box, gray.shape, margin)
        pair = eyes[i] if eyes is not None else None
        if pair is None:
            resize_face(gray[y:y + h, x:x + w], out=out[i])
        else:
            resize_face(_levelled(gray, Box(x, y, w, h), pair), out=out[i])
    return out[:n]


#: Two eye centres, ``((x, y), (x, y))``: the one on the image's left first.
Eyes = tuple[tuple[float, float], tuple[float, float]]


def _levelled(gray: np.ndarray, crop: Box, eyes: Eyes) -> np.ndarray:
    """The square ``crop`` of ``gray`` with the face turned about the point between its
    eyes until they are level (a region a third wider turns, so the corners are image)."""
    x, y, side, _ = crop
    fh, fw = gray.shape[:2]
    pad = side // 3
    x0, y0 = max(0, x - pad), max(0, y - pad)
    region = gray[y0:min(fh, y + side + pad), x0:min(fw, x + side + pad)]
    (ax, ay), (bx, by) = eyes
    angle = float(np.degrees(np.arctan2(by - ay, bx - ax)))
    turn = cv2.getRotationMatrix2D(((ax + bx) / 2 - x0, (ay + by) / 2 - y0), angle, 1.0)
    region = cv2.warpAffine(region, turn, (region.shape[1], region.shape[0]),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return region[y - y0:y - y0 + side, x - x0:x - x0 + side]
