"""Drawing boxes and labels on frames, per-face probability charts, and the annotated video."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.capture.image_files import write_image
from edge.frames import Frame
from edge.stats import Stats
from edge.vision.boxes import Box
from edge.vision.tracking import Tracker

#: BGR colour per emotion, so a label reads at a glance.
_COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 60), "fear": (160, 60, 160),
    "happy": (40, 200, 250), "sad": (200, 120, 40), "surprise": (40, 160, 250),
    "neutral": (200, 200, 200),
}


def drawable(text: str) -> str:
    """``text`` as OpenCV's Hershey fonts can draw it: ASCII, anything else as '?'.

    OpenCV crashes the process (SIGSEGV) on a string that is not valid Unicode, such as a
    file name that is not UTF-8 (its bytes arrive as lone surrogates), and draws other
    non-ASCII characters as '?' anyway.
    """
    return text.encode("ascii", "replace").decode("ascii")


def draw_faces(image: np.ndarray, boxes: Sequence[Box], labels: Sequence[str],
               confidences: Sequence[float], ids: Sequence[int] | None = None) -> np.ndarray:
    """Draw each box with ``[id] emotion confidence`` above it, in place; returns ``image``."""
    h = image.shape[0]
    thick = max(1, h // 320)
    for i, (box, label, conf) in enumerate(zip(boxes, labels, confidences, strict=True)):
        x, y, w, bh = box
        colour = _COLOURS.get(label, (0, 255, 0))
        cv2.rectangle(image, (x, y), (x + w, y + bh), colour, thick + 1)
        text = drawable(f"{'#' + str(ids[i]) + ' ' if ids is not None else ''}{label} "
                        f"{conf:.0%}")
        scale = max(0.45, h / 900)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 6 if y - th - 10 > 0 else y + bh + th + 6
        cv2.rectangle(image, (x, ty - th - 4), (x + tw + 6, ty + base), colour, -1)
        cv2.putText(image, text, (x + 3, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thick, cv2.LINE_AA)
    return image


def draw_fps(image: np.ndarray, fps: float) -> np.ndarray:
    """Frame-rate overlay in the top-left corner, in place."""
    cv2.putText(image, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3,
                cv2.LINE_AA)
    cv2.putText(image, f"{fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (255, 255, 255), 1, cv2.LINE_AA)
    return image


def probability_chart(faces: Sequence[dict[str, float]], path: str | Path,
                      title: str = "") -> None:
    """Save one horizontal bar chart per face of ``{emotion: probability}`` as a PNG.

    Drawn with OpenCV, so the device needs no plotting library.
    """
    labels = list(faces[0]) if faces else []
    row_h, pad, bar_w, label_w = 22, 12, 260, 80
    panel_h = pad * 2 + 20 + row_h * len(labels)
    width = label_w + bar_w + 70
    canvas = np.full((max(1, len(faces)) * panel_h + (24 if title else 0), width, 3), 255,
                     np.uint8)
    y0 = 0
    if title:
        cv2.putText(canvas, drawable(title), (pad, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        y0 = 24
    for i, probs in enumerate(faces):
        top = y0 + i * panel_h + pad
        best = max(probs, key=probs.get)
        cv2.putText(canvas, drawable(f"face {i + 1}: {best}"), (pad, top + 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j, label in enumerate(labels):
            y = top + 20 + j * row_h
            p = float(probs[label])
            cv2.putText(canvas, drawable(label), (pad, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (40, 40, 40), 1, cv2.LINE_AA)
            cv2.rectangle(canvas, (label_w, y + 3), (label_w + bar_w, y + row_h - 3),
                          (235, 235, 235), -1)
            cv2.rectangle(canvas, (label_w, y + 3), (label_w + int(bar_w * p), y + row_h - 3),
                          _COLOURS.get(label, (120, 120, 120)), -1)
            cv2.putText(canvas, f"{p:.0%}", (label_w + bar_w + 6, y + 15),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
    write_image(path, canvas)


class VideoAnnotator:
    """Writes the processed stream with boxes and labels to a video file.

    Called by the pipeline's collector thread with each frame in order; the frame and its
    faces in view are handed to the annotator's own thread, which draws and encodes, so a
    slow encoder does not hold up events (it is waited for only when
    :data:`ANNOTATE_QUEUE` frames are behind). Whoever builds it closes it after the
    pipeline has stopped (:class:`edge.assemble.Device` does); ``close`` writes what is
    queued first.
    """

    def __init__(self, path: str, fps: float | Callable[[], float], stats: Stats) -> None:
        self.path = path
        #: Frames per second written into the file; a callable is asked at the first frame
        #: (the source's own rate, known once it is open), so the video plays at real speed.
        self.fps = fps
        self.stats = stats
        self._writer: cv2.VideoWriter | None = None
        self._queue: queue.Queue[tuple[Frame, list[tuple], float] | None] = queue.Queue(
            ANNOTATE_QUEUE)
        self._error: Exception | None = None
        self._closed = False
        self._lock = threading.Lock()  # close() from another thread than the collector
        self._thread = threading.Thread(target=self._encode, name="annotate", daemon=True)
        self._thread.start()

    def __call__(self, frame: Frame, boxes: list[Box], tracker: Tracker) -> None:
        if self._error is not None:
            raise self._error  # the run ends with the encoder's failure
        faces = [(t.box, tracker.labels[t.reported], float(t.probs[t.reported]), t.id)
                 for t in tracker.in_view()]
        item = (frame, faces, self.stats.fps())
        while not self._closed:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._error is not None:
                    raise self._error from None

    def _encode(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(*item)
                except Exception as exc:  # reported to the collector, which ends the run
                    self._error = exc

    def _write(self, frame: Frame, faces: list[tuple], fps_now: float) -> None:
        # A copy: the frame's own pixels may still be read (the web page's live view).
        image = (frame.image.copy() if frame.image is not None
                 else cv2.cvtColor(frame.gray, cv2.COLOR_GRAY2BGR))
        if self._writer is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            fps = self.fps() if callable(self.fps) else self.fps
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"),
                                           fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot write video")
        draw_faces(image, [f[0] for f in faces], [f[1] for f in faces],
                   [f[2] for f in faces], [f[3] for f in faces])
        draw_fps(image, fps_now)
        self._writer.write(image)

    def close(self) -> None:
        """Write the queued frames and finish the video file; safe to call twice, and
        later frames are not written."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join()
        if self._writer is not None:
            self._writer.release()
            self._writer = None


#: Frames the annotated video's encoder may be behind before the collector waits for it
#: (each a full-resolution colour frame: 8 at 1080p hold about 50 MB).
ANNOTATE_QUEUE = 8
