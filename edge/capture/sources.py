"""Frame sources behind one interface: OpenCV (camera, file, URL), Picamera2, still images.

Every source converts to grayscale once, at capture; the detector and the classifier
work on that gray frame. ``read()`` returns ``None`` when a finite source has ended and
raises :class:`SourceError` when a device fails (the pipeline retries with backoff).
"""

from __future__ import annotations

import glob
import importlib
import logging
import time
import types
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.capture.image_files import IMAGE_SUFFIXES, ImageError, read_image
from edge.config import SourceConfig, camera_index, is_glob, is_stream
from edge.frames import Frame

log = logging.getLogger(__name__)

#: Files a source reads as video (anything else that is not an image is tried as one too).
VIDEO_FILE_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"}


class SourceError(RuntimeError):
    """A source that cannot open or stopped delivering frames."""


class FrameSource(Protocol):
    """What the pipeline needs from a source."""

    #: True for cameras and streams (drop the oldest frame when behind), False for files.
    live: bool

    def open(self) -> None:
        """Open the device or file; raises :class:`SourceError` when it cannot."""

    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end of a finite source."""

    def close(self) -> None:
        """Release the device; safe to call twice."""


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class OpenCVSource:
    """A camera index, a video file or a stream URL through ``cv2.VideoCapture``."""

    def __init__(self, uri: int | str, width: int = 640, height: int = 480, fps: float = 30.0,
                 loop: bool = False, keep_color: bool = True) -> None:
        self.uri = uri
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
        self.keep_color = keep_color
        self.is_file = isinstance(uri, str) and not is_stream(uri)
        self.live = not self.is_file
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._pass = self._expected = 0
        self._failed_opens = 0  # in a row: OpenCV's own warning is printed for the first

    def open(self) -> None:
        if self.is_file and not Path(str(self.uri)).is_file():
            raise SourceError(f"{self.uri}: no such video file")
        cap = _quiet_open(self.uri) if self._failed_opens else cv2.VideoCapture(self.uri)
        if not cap.isOpened():
            cap.release()
            self._failed_opens += 1
            raise SourceError(f"cannot open video source {self.uri!r}")
        self._failed_opens = 0
        if isinstance(self.uri, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            # Keep the driver's queue short: the newest frame is the one that matters.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap
        self._pass = 0  # frames read since the file was opened or rewound
        # A file's header says how many frames it holds; one that ends well short of that
        # is broken, not finished (0 or negative: a stream, or a container that says not).
        self._expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.is_file else 0
        log.info("opened %r: %dx%d at %.1f fps", self.uri, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), cap.get(cv2.CAP_PROP_FPS))

    @property
    def nominal_fps(self) -> float:
        """The frame rate the file or device reports (or the configured one)."""
        fps = self._cap.get(cv2.CAP_PROP_FPS) if self._cap is not None else 0.0
        return fps if fps and fps > 0 else self.fps

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self.uri!r} is not open")
        ok, image = self._cap.read()
        if not ok and self.is_file:
            self._check_complete()
            if self.loop and self._seq > 0:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._pass = 0
                ok, image = self._cap.read()
            if not ok:
                return None
        if not ok:
            raise SourceError(f"video source {self.uri!r} stopped delivering frames")
        self._pass += 1
        now, mono = time.time(), time.monotonic()
        t0 = time.perf_counter()
        gray = _gray(image)
        frame = Frame(self._seq, now, mono, gray, image if self.keep_color else None,
                      gray_s=time.perf_counter() - t0)
        self._seq += 1
        return frame

    def _check_complete(self) -> None:
        """Raise when a file ended well before the frame count its header gives (a few
        frames' or 2 % slack: counts from a duration are estimates)."""
        short = self._expected - self._pass
        if self._expected > 0 and short > max(2, 0.02 * self._expected):
            raise SourceError(f"{self.uri}: ended after {self._pass} of the {self._expected} "
                              "frames its header gives (a truncated or corrupt file)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource:
    """Still images: one file, every image in a folder, or a glob pattern (sorted)."""

    live = False

    def __init__(self, spec: str | list[str], keep_color: bool = True) -> None:
        self.spec = spec
        self.keep_color = keep_color
        self._paths: list[Path] = []
        self._next = 0
        self._seq = 0
        #: Files skipped because they could not be decoded (each logged once).
        self.skipped = 0

    def open(self) -> None:
        self._paths = list_images(self.spec)
        self._next = 0
        if not self._paths:
            raise SourceError(f"no images found for {self.spec!r}")

    def read(self) -> Frame | None:
        """The next readable image; unreadable or oversized files are skipped and counted."""
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            try:
                image = read_image(path)
            except ImageError as exc:
                self.skipped += 1
                log.warning("%s (skipped; %d so far)", exc, self.skipped)
                continue
            frame = Frame(self._seq, time.time(), time.monotonic(), _gray(image),
                          image if self.keep_color else None, name=str(path))
            self._seq += 1
            return frame
        return None

    def close(self) -> None:
        self._paths = []
        self._next = self._seq = 0


def list_images(spec: str | list[str]) -> list[Path]:
    """Image files named by a path, a folder, a glob, or a list of those (sorted, unique)."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    found: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            found += sorted(Path(q) for q in glob.glob(s) if Path(q).suffix.lower()
                            in IMAGE_SUFFIXES)
    return list(dict.fromkeys(found))


class Picamera2Source:
    """The Raspberry Pi camera through Picamera2.

    Two streams: ``main`` at full resolution (colour when kept, else YUV420 whose Y plane
    is the gray frame) and ``lores`` YUV420 at the detector's width, whose Y plane is the
    downscaled gray frame the detector needs, produced by the ISP at no CPU cost.
    """

    live = True

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0,
                 detect_width: int = 320, keep_color: bool = False) -> None:
        self.width, self.height, self.fps = width, height, fps
        # lores must be no larger than main, with even dimensions for YUV420.
        lw = min(detect_width, width) // 2 * 2
        self.lores_size = (lw, round(height * lw / width) // 2 * 2)
        self.keep_color = keep_color
        self._cam = None
        self._seq = 0

    def open(self) -> None:
        module = import_picamera2()
        try:
            cam = module.Picamera2()
            main = {"size": (self.width, self.height),
                    "format": "RGB888" if self.keep_color else "YUV420"}
            config = cam.create_video_configuration(
                main=main, lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": float(self.fps)})
            cam.configure(config)
            cam.start()
        except Exception as exc:  # libcamera raises several types for a missing camera
            raise SourceError(f"cannot start the Pi camera: {exc}") from exc
        self._cam = cam
        log.info("opened Picamera2: main %dx%d, lores %dx%d at %.1f fps", self.width,
                 self.height, *self.lores_size, self.fps)

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError("the Pi camera is not open")
        try:
            request = self._cam.capture_request()
        except Exception as exc:
            raise SourceError(f"the Pi camera stopped delivering frames: {exc}") from exc
        try:
            now, mono = time.time(), time.monotonic()
            main = request.make_array("main")
            lores = request.make_array("lores")
        finally:
            request.release()
        lw, lh = self.lores_size
        small = lores[:lh, :lw]  # Y plane of YUV420
        if self.keep_color:
            gray, image = _gray(main), main
        else:
            gray, image = main[: self.height, : self.width], None
        frame = Frame(self._seq, now, mono, gray, image, small_gray=small)
        self._seq += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def import_picamera2() -> types.ModuleType:
    """Import ``picamera2``, or explain how to get it."""
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:
        raise SourceError(
            f"Picamera2 is not available ({exc}). On Raspberry Pi OS install it with "
            "'sudo apt install python3-picamera2' and create the virtualenv with "
            "--system-site-packages so it is visible; elsewhere use source.kind: opencv"
        ) from None


def picamera2_available() -> bool:
    """True when ``picamera2`` can be imported (a Raspberry Pi with the OS package)."""
    try:
        import_picamera2()
    except SourceError:
        return False
    return True


def make_source(cfg: SourceConfig, detect_width: int = 320,
                keep_color: bool = True) -> FrameSource:
    """The source the configuration asks for; ``auto`` picks Picamera2 when present.

    With ``auto``, a string ``uri`` that names images (file, folder, glob) gives an
    :class:`ImageSource`, any other string or an index an :class:`OpenCVSource`.
    """
    kind = cfg.kind
    if kind == "auto":
        if isinstance(cfg.uri, str):
            kind = "images" if _looks_like_images(cfg.uri) else "opencv"
        else:
            kind = "picamera2" if picamera2_available() else "opencv"
        log.info("source.kind auto -> %s", kind)
    if kind == "picamera2":
        return Picamera2Source(cfg.width, cfg.height, cfg.fps, detect_width, keep_color)
    if kind == "images":
        return ImageSource(str(cfg.uri), keep_color)
    index = camera_index(cfg.uri)
    return OpenCVSource(cfg.uri if index is None else index, cfg.width, cfg.height, cfg.fps,
                        cfg.loop, keep_color)


def video_fps(path: str) -> float:
    """The frame rate a video file declares (0.0 when it declares none)."""
    cap = cv2.VideoCapture(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and fps > 0 and fps < 1000 else 0.0


def local_path(uri: str | int) -> Path | None:
    """The local file or folder a source uri names; None for camera indexes, URLs, globs."""
    if camera_index(uri) is not None or is_stream(uri) or is_glob(uri):
        return None
    return Path(uri)


def _looks_like_images(uri: str) -> bool:
    p = Path(uri)
    if p.is_dir():
        return True
    if p.suffix.lower() in VIDEO_FILE_SUFFIXES or is_stream(uri):
        return False
    return p.suffix.lower() in IMAGE_SUFFIXES or is_glob(uri)


def _quiet_open(uri: int | str) -> cv2.VideoCapture:
    """``cv2.VideoCapture(uri)`` without OpenCV's warnings on stderr: a camera that is
    retried every few seconds would print the same lines each time (the reconnect loop
    says once why it waits)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(uri)
    finally:
        cv2.utils.logging.setLogLevel(level)
