"""The runs ``python -m edge.bench`` measures: the pipeline, the sequential loop, decoding alone.

Each returns a dict of figures (frames per second, CPU, drops, faces found, and for the
pipeline its stage latencies and the events it wrote), so a report can set runs side by
side on the same frames.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.assemble import build_detector, build_device, build_tracker
from edge.capture.sources import OpenCVSource, video_fps
from edge.config import Config
from edge.frames import Frame
from edge.model import EmotionClassifier
from edge.runtime.pipeline import Pipeline
from edge.sinks.log import JsonLinesSink
from edge.stats import Stats
from edge.vision.faces import extract_faces


class Usage:
    """CPU time and wall time between two points of this process."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = r.ru_utime + r.ru_stime

    def since(self) -> tuple[float, float]:
        """Seconds of wall time and CPU percent (100 = one core) since construction."""
        r = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - self.wall
        return wall, 100.0 * (r.ru_utime + r.ru_stime - self.cpu) / max(wall, 1e-9)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def clip_source(path: str, cfg: Config) -> OpenCVSource:
    """The clip as the service would read it (gray only), looping so any count fits."""
    return OpenCVSource(path, cfg.source.width, cfg.source.height, cfg.source.fps, loop=True,
                        keep_color=False)


class DecodedClip:
    """A clip decoded in advance, replayed from memory in a loop (gray frames): what a
    camera that hands over raw pictures (Picamera2) delivers, with no decoding to pay."""

    live = False

    def __init__(self, frames: list[np.ndarray]) -> None:
        if not frames:
            raise ValueError("a decoded clip needs at least one frame")
        self.frames = frames
        self._seq = 0

    def open(self) -> None:
        self._seq = 0

    def read(self) -> Frame:
        gray = self.frames[self._seq % len(self.frames)]
        frame = Frame(self._seq, time.time(), time.monotonic(), gray)
        self._seq += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""


def decode_clip(path: str, cfg: Config, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames of ``path`` as gray images (at most the clip's length;
    a :class:`DecodedClip` loops over them)."""
    src = OpenCVSource(path, cfg.source.width, cfg.source.height, cfg.source.fps,
                       keep_color=False)
    src.open()
    try:
        grays = []
        while len(grays) < frames and (f := src.read()) is not None:
            grays.append(f.gray)
        return grays
    finally:
        src.close()


def run_pipeline(cfg: Config, path: str, classifiers: list[EmotionClassifier], frames: int,
                 warmup: int, rate: float | None = None,
                 decoded: list[np.ndarray] | None = None, grid: Grid | None = None) -> dict:
    """Figures for the threaded pipeline over ``frames`` frames of ``path``.

    Besides speed: frames with a face, the face ids seen and every ``changed`` event as
    ``[frame, face, emotion]``, so schedules can be compared on what they report. With
    ``decoded`` (from :func:`decode_clip`), the frames are replayed from memory instead
    of decoding ``path``; with ``grid`` (the clip is a :func:`grid_clip`), the faces found
    per frame are counted against the faces present (:class:`CrowdCount`).
    """
    crowd = CrowdCount(grid) if grid else None
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        log = Path(tmp) / "events.jsonl"

        def once(n: int, stats: Stats, pace: float | None,
                 count: Callable[[Frame, list, object], None] | None = None
                 ) -> tuple[Pipeline, float, float]:
            run_cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(
                cfg.pipeline, max_frames=n, annotate_video=None))
            source = DecodedClip(decoded) if decoded else clip_source(path, cfg)
            with build_device(run_cfg, source=source,
                              sinks=[JsonLinesSink(log)], classifiers=classifiers,
                              stats=stats, rate=pace, on_frame=count) as device:
                p = device.pipeline
                usage = Usage()
                result = p.run()
                if result.error is not None:
                    raise result.error
                wall, cpu = usage.since()
            return p, wall, cpu

        if warmup:
            once(warmup, Stats(), None)
            log.unlink(missing_ok=True)
        stats = Stats()
        latency = Latencies()
        p, wall, cpu = once(frames, stats, rate, latency.along(crowd))
        events = [json.loads(line) for line in log.read_text().splitlines()]
    # A person watching sees seconds: one second of the clip's frames.
    second = round(rate or video_fps(path) or 30)
    return {**_figures(stats.snapshot(), p.frames.dropped, wall, cpu, events, second),
            "steady_p99_ms": latency.p99(after=second),  # after the scene's first second
            **({"crowd": crowd.figures()} if crowd else {})}


def _figures(snap: dict, dropped: int, wall: float, cpu: float, events: list[dict],
             second: int) -> dict:
    """A run's speed, detections and events, from its stats and its event log."""
    c = snap["counters"]
    done = c.get("frames", 0)
    return {
        "fps": round(done / wall, 2), "frames": done, "wall_s": round(wall, 3),
        "dropped": dropped, "cpu_percent": round(cpu, 1),
        "faces_per_frame": round(c.get("faces_detected", 0) / max(done, 1), 3),
        "frames_with_face": c.get("frames_with_face", 0),
        "detections": {k.removeprefix("detect_"): v for k, v in sorted(c.items())
                       if k.startswith("detect_")},
        "classifications_reused": c.get("classify_reused", 0),
        "events": c.get("events", 0), "stages_ms": snap["stages"],
        "face_ids": sorted({e["face"] for e in events}),
        "changed": [[e["frame"], e["face"], e["emotion"]] for e in events
                    if e["type"] == "changed"],
        "appeared": sum(e["type"] == "appeared" for e in events),
        "reverted": reverted_changes(events, second),
    }


def reverted_changes(events: list[dict], window: int) -> int:
    """How many ``changed`` events were undone: the same face changed back to the emotion
    it had before within ``window`` frames (a flicker a person reads as noise)."""
    last: dict[int, tuple[int, str, str | None]] = {}  # face -> (frame, emotion, before)
    undone = 0
    for e in sorted(events, key=lambda e: e["frame"]):
        if e["type"] == "appeared":
            last[e["face"]] = (e["frame"], e["emotion"], None)
        elif e["type"] == "changed" and e["face"] in last:
            frame, emotion, before = last[e["face"]]
            undone += e["emotion"] == before and e["frame"] - frame <= window
            last[e["face"]] = (e["frame"], e["emotion"], emotion)
    return undone


def run_sequential(cfg: Config, path: str, classifier: EmotionClassifier, frames: int,
                   warmup: int) -> dict:
    """The single-thread loop: read, detect (full frame), classify, track, repeat."""
    det = build_detector(cfg)
    tracker = build_tracker(cfg, classifier)
    src = clip_source(path, cfg)
    src.open()
    try:
        for _ in range(warmup):
            f = src.read()
            classifier.classify(extract_faces(f.gray, det.detect(f.gray), cfg.detector.margin))
        src.close()
        src = clip_source(path, cfg)
        src.open()
        with_face = faces = 0
        usage = Usage()
        for _ in range(frames):
            f = src.read()
            boxes = det.detect(f.gray)
            probs = classifier.classify(extract_faces(f.gray, boxes, cfg.detector.margin))
            tracker.update(f.seq, f.ts, f.mono, boxes, probs)
            faces += len(boxes)
            with_face += bool(boxes)
        wall, cpu = usage.since()
    finally:
        src.close()
    return {"fps": round(frames / wall, 2), "frames": frames, "wall_s": round(wall, 3),
            "dropped": 0, "cpu_percent": round(cpu, 1),
            "faces_per_frame": round(faces / frames, 3), "frames_with_face": with_face}


def run_decode(cfg: Config, path: str, frames: int, rate: float | None = None) -> dict:
    """Reading alone (decode and gray conversion, as the capture thread does): at full
    speed, the ceiling no pipeline on this source can pass; at ``rate`` frames per second,
    the CPU a camera-paced pipeline spends before it does any work of its own."""
    src = clip_source(path, cfg)
    src.open()
    try:
        src.read()
        usage = Usage()
        start = time.monotonic()
        for n in range(frames):
            if rate:
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            src.read()
        wall, cpu = usage.since()
    finally:
        src.close()
    return {"fps": round(frames / wall, 2), "frames": frames, "wall_s": round(wall, 3),
            "dropped": 0, "cpu_percent": round(cpu, 1), "frames_with_face": 0}


def resized_clip(path: str, size: tuple[int, int], frames: int, out_dir: Path) -> str:
    """A copy of ``path``'s first ``frames`` frames at ``size`` (width, height), for
    measuring what a camera of that resolution would cost (written once, mp4v).

    Each frame is scaled as a whole to fit and centred on a black frame: faces keep
    their shape, as a wider camera would see them, instead of being stretched."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = out_dir / f"{Path(path).stem}_{size[0]}x{size[1]}.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    try:
        for _ in range(frames):
            ok, image = cap.read()
            if not ok:
                break
            h, w = image.shape[:2]
            k = min(size[0] / w, size[1] / h)
            fw, fh = round(w * k), round(h * k)
            x0, y0 = (size[0] - fw) // 2, (size[1] - fh) // 2
            canvas[y0:y0 + fh, x0:x0 + fw] = cv2.resize(image, (fw, fh),
                                                        interpolation=cv2.INTER_LINEAR)
            writer.write(canvas)
    finally:
        cap.release()
        writer.release()
    return str(out)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A crowd made from one clip: ``cols`` x ``rows`` tiles on a ``size`` frame.

    Tile ``i`` plays the clip ``i / (cols * rows)`` of its length later than tile 0, one
    tile in three is mirrored, and tiles are scaled to 100, 80 or 60 % of their cell by
    row, so one frame holds as many different faces, at as many sizes, as people sitting
    at different distances. Each tile holds one face: the clip's own.
    """

    cols: int
    rows: int
    size: tuple[int, int]

    @property
    def faces(self) -> int:
        return self.cols * self.rows

    def cell(self, box: tuple[int, ...]) -> int:
        """The tile whose cell holds the centre of ``box``."""
        cw, ch = self.size[0] / self.cols, self.size[1] / self.rows
        col = min(self.cols - 1, max(0, int((box[0] + box[2] / 2) / cw)))
        row = min(self.rows - 1, max(0, int((box[1] + box[3] / 2) / ch)))
        return row * self.cols + col


def grid_clip(path: str, grid: Grid, frames: int, out_dir: Path) -> str:
    """``frames`` frames of ``grid`` made from the clip at ``path``, written once (mp4v)."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    source: list[np.ndarray] = []
    try:
        while len(source) < 10_000 and (image := cap.read()[1]) is not None:
            source.append(image)
    finally:
        cap.release()
    if not source:
        raise ValueError(f"{path}: no frames to tile")
    out = out_dir / f"{Path(path).stem}_grid{grid.cols}x{grid.rows}.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, grid.size)
    cw, ch = grid.size[0] // grid.cols, grid.size[1] // grid.rows
    h, w = source[0].shape[:2]
    canvas = np.zeros((grid.size[1], grid.size[0], 3), np.uint8)
    try:
        for t in range(frames):
            for i in range(grid.faces):
                row, col = divmod(i, grid.cols)
                k = min(cw / w, ch / h) * (1.0, 0.8, 0.6)[row % 3]
                fw, fh = round(w * k), round(h * k)
                image = source[(t + i * len(source) // grid.faces) % len(source)]
                tile = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
                if i % 3 == 1:
                    tile = tile[:, ::-1]
                x0, y0 = col * cw + (cw - fw) // 2, row * ch + (ch - fh) // 2
                canvas[y0:y0 + fh, x0:x0 + fw] = tile
            writer.write(canvas)
    finally:
        writer.release()
    return str(out)


class Latencies:
    """Each in-order frame's capture-to-result time; an ``on_frame`` hook of the pipeline."""

    def __init__(self) -> None:
        self.ms: list[tuple[int, float]] = []  # (frame number, milliseconds)
        self._first: int | None = None

    def __call__(self, frame: Frame, boxes: list, tracker: object) -> None:
        if self._first is None:
            self._first = frame.seq
        self.ms.append((frame.seq - self._first, 1000.0 * (time.monotonic() - frame.mono)))

    def along(self, other: Callable[[Frame, list, object], None] | None
              ) -> Callable[[Frame, list, object], None]:
        """This hook, and ``other`` too when given."""
        if other is None:
            return self

        def both(frame: Frame, boxes: list, tracker: object) -> None:
            self(frame, boxes, tracker)
            other(frame, boxes, tracker)
        return both

    def p99(self, after: int = 0) -> float | None:
        """The 99th percentile of the frames from the ``after``-th on (None without any)."""
        values = [ms for n, ms in self.ms if n >= after]
        return round(float(np.percentile(values, 99)), 1) if values else None


class CrowdCount:
    """Counts, frame by frame, the tiles of a :class:`Grid` with a face found and the
    boxes beyond one per tile (false faces); an ``on_frame`` hook of the pipeline."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.frames = self.found = self.false = 0

    def __call__(self, frame: Frame, boxes: list, tracker: object) -> None:
        tiles = {self.grid.cell(b) for b in boxes}
        self.frames += 1
        self.found += len(tiles)
        self.false += len(boxes) - len(tiles)

    def figures(self) -> dict:
        n = max(self.frames, 1)
        return {"faces_present": self.grid.faces,
                "found_per_frame": round(self.found / n, 2),
                "found_share": round(self.found / n / self.grid.faces, 4),
                "false_per_frame": round(self.false / n, 3)}
