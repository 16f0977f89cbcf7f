"""``python -m edge.bench``: frames per second and per-stage latency of the real pipeline.

First times the classifier alone (one face per call, as the model card's ``ms per face``),
then runs the same pipeline code as the service (``edge.pipeline``) over a video, after a
warm-up, and reports end-to-end frames per second, per-stage latency percentiles,
capture-to-result latency, drops, faces per frame, CPU and peak memory, and the machine.
``--compare`` adds, on the same frames, the sequential single-thread loop (read, detect,
classify, repeat), the threaded pipeline with 1..N workers, and every model mode found
next to the model, each mode also timed alone. ``--rate`` replays the file on a clock, as a
camera would deliver it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config, load
from edge.faces import FaceDetector, extract_faces
from edge.model import FACE_SIZE, EmotionClassifier, card_path_for
from edge.pipeline import Pipeline
from edge.service import Components, load_classifiers, make_pipeline
from edge.sinks.jsonl import JsonLinesSink
from edge.sources import OpenCVSource
from edge.stats import Stats
from edge.sysinfo import cpu_model
from edge.tracking import Tracker

log = logging.getLogger("edge.bench")

SAMPLE = "models/sample/astronaut.mp4"
MODES = ("int8", "float16", "dynamic", "float32")


def machine() -> dict:
    """CPU model, cores, OS and library versions of this machine."""
    versions = {}
    for dist in ("ai-edge-litert", "opencv-python-headless", "numpy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cores_used": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "system": platform.platform(),
            "versions": versions}


class _Usage:
    """CPU time and wall time between two points of this process."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = r.ru_utime + r.ru_stime

    def since(self) -> tuple[float, float]:
        r = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - self.wall
        return wall, 100.0 * (r.ru_utime + r.ru_stime - self.cpu) / max(wall, 1e-9)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def classify_latency(classifier: EmotionClassifier, runs: int = 300,
                     face: np.ndarray | None = None) -> dict:
    """Wall time of single-face classify calls, the model alone, in milliseconds.

    What "ms per face" means in the model card and the README: one face per call (batch
    1), the device's own classify path (scaling, invoke, dequantize), on a quiet process.

    Args:
        classifier: the loaded model.
        runs: calls timed, after 20 untimed ones.
        face: ``(48, 48)`` uint8 pixels; these models' time does not depend on them, so
            a mid-grey face stands in by default.

    Returns:
        ``p50_ms``, ``p95_ms``, ``runs`` and ``batch`` (1).
    """
    if runs <= 0:
        raise ValueError(f"runs must be > 0, got {runs}")
    one = (np.full((1, FACE_SIZE, FACE_SIZE), 128, np.uint8) if face is None
           else np.asarray(face, np.uint8).reshape(1, FACE_SIZE, FACE_SIZE))
    for _ in range(20):
        classifier.classify(one)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        classifier.classify(one)
        times[i] = time.perf_counter() - t0
    p50, p95 = np.percentile(times, (50, 95)) * 1e3
    return {"p50_ms": round(float(p50), 4), "p95_ms": round(float(p95), 4), "runs": runs,
            "batch": 1}


def _source(path: str, cfg: Config) -> OpenCVSource:
    return OpenCVSource(path, cfg.source.width, cfg.source.height, cfg.source.fps, loop=True,
                        keep_color=False)


def run_pipeline(cfg: Config, path: str, classifiers: list[EmotionClassifier], frames: int,
                 warmup: int, rate: float | None = None) -> dict:
    """Figures for the threaded pipeline over ``frames`` frames of ``path``."""
    workers = [(FaceDetector(cfg.detector), c) for c in classifiers]
    labels, card = classifiers[0].labels, classifiers[0].card
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        def once(n: int, stats: Stats, pace: float | None) -> tuple[Pipeline, float, float]:
            run_cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(
                cfg.pipeline, max_frames=n, annotate_video=None))
            parts = Components(_source(path, cfg), workers,
                               Tracker(cfg.tracking, labels, cfg.device, card.id),
                               [JsonLinesSink(Path(tmp) / "events.jsonl")])
            p = make_pipeline(run_cfg, parts, stats, rate=pace)
            usage = _Usage()
            result = p.run()
            if result.error is not None:
                raise result.error
            wall, cpu = usage.since()
            return p, wall, cpu

        if warmup:
            once(warmup, Stats(), None)
        stats = Stats()
        p, wall, cpu = once(frames, stats, rate)
    snap = stats.snapshot()
    c = snap["counters"]
    done = c.get("frames", 0)
    return {
        "fps": round(done / wall, 2), "frames": done, "wall_s": round(wall, 3),
        "dropped": p.frames.dropped, "cpu_percent": round(cpu, 1),
        "faces_per_frame": round(c.get("faces_detected", 0) / max(done, 1), 3),
        "frames_with_face": c.get("frames_with_face", 0),
        "detections": {"full": c.get("detect_full", 0), "around_faces":
                       c.get("detect_partial", 0)},
        "events": c.get("events", 0), "stages_ms": snap["stages"],
    }


def run_sequential(cfg: Config, path: str, classifier: EmotionClassifier, frames: int,
                   warmup: int) -> dict:
    """The single-thread loop: read, detect (full frame), classify, track, repeat."""
    det = FaceDetector(cfg.detector)
    tracker = Tracker(cfg.tracking, classifier.labels, cfg.device, classifier.card.id)
    src = _source(path, cfg)
    src.open()
    try:
        for _ in range(warmup):
            f = src.read()
            classifier.classify(extract_faces(f.gray, det.detect(f.gray), cfg.detector.margin))
        src.close()
        src = _source(path, cfg)
        src.open()
        with_face = faces = 0
        usage = _Usage()
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


def sibling_models(model: Path) -> dict[str, Path]:
    """Every mode of the model found next to it (``<prefix>_<mode>.tflite`` with a card)."""
    stem = model.stem
    prefix = stem.rsplit("_", 1)[0] if stem.rsplit("_", 1)[-1] in MODES else stem
    found = {}
    for mode in MODES:
        p = model.with_name(f"{prefix}_{mode}.tflite")
        if p.is_file() and card_path_for(p).is_file():
            found[mode] = p
    return found or {"model": model}


def _classifiers(path: Path, cfg: Config, n: int) -> list[EmotionClassifier]:
    """``n`` classifiers on the model at ``path`` (its card next to it), as the service
    loads them."""
    model = dataclasses.replace(cfg.model, path=str(path), card=None)
    return load_classifiers(dataclasses.replace(cfg, model=model), n)


def stage_table(stages: dict) -> str:
    lines = [f"  {'stage':<15}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'n':>8}"]
    names = {"capture": "capture/decode", "gray": "gray", "resize": "resize",
             "detect": "detect", "crop": "crop", "classify": "classify/frame",
             "classify_face": "classify/face", "track": "track", "sink": "sink",
             "frame_latency": "capture->result", "latency": "capture->event"}
    for key, label in names.items():
        if key in stages:
            s = stages[key]
            lines.append(f"  {label:<15}{s['p50_ms']:>9.3f}{s['p95_ms']:>9.3f}"
                         f"{s['p99_ms']:>9.3f}{s['n']:>8}")
    return "\n".join(lines)


def compare_table(rows: list[dict]) -> str:
    base = rows[0]["fps"]
    head = (f"  {'run':<34}{'fps':>8}{'x seq':>7}{'CPU %':>7}{'drops':>7}"
            f"{'face frames':>13}{'p95 result ms':>15}")
    out = [head, "  " + "-" * (len(head) - 2)]
    for r in rows:
        lat = r.get("stages_ms", {}).get("frame_latency", {}).get("p95_ms")
        out.append(f"  {r['name']:<34}{r['fps']:>8.1f}{r['fps'] / base:>7.2f}"
                   f"{r['cpu_percent']:>7.0f}{r['dropped']:>7}"
                   f"{r['frames_with_face']:>8}/{r['frames']:<4}"
                   f"{lat if lat is not None else '-':>15}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.bench", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML config (detector, model, tracking settings)")
    p.add_argument("--source", default="sample",
                   help="a video file, 'sample' (the bundled clip) or 'camera' (index 0)")
    p.add_argument("--model", help="the .tflite model (default: model.path of the config)")
    p.add_argument("--frames", type=int, default=600, help="frames measured (default 600)")
    p.add_argument("--warmup", type=int, default=60, help="frames run first, not measured")
    p.add_argument("--workers", type=int, help="pipeline workers (default: pipeline.workers)")
    p.add_argument("--max-workers", type=int, default=os.cpu_count() or 1,
                   help="with --compare: threaded runs with 1..this many workers")
    p.add_argument("--rate", type=float, help="replay at this many frames per second, "
                                              "dropping the oldest when behind (a camera)")
    p.add_argument("--cpus", type=int, help="pin the process to this many cores")
    p.add_argument("--compare", action="store_true",
                   help="sequential loop vs threaded 1..N workers vs every model mode")
    p.add_argument("--latency-runs", type=int, default=300,
                   help="single-face classify calls timed per model (default 300)")
    p.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.frames <= 0 or args.warmup < 0 or args.latency_runs <= 0:
        p.error("--frames and --latency-runs must be > 0 and --warmup >= 0")
    from edge.service import STARTUP_ERRORS

    try:
        cfg = load(args.config, {"model.path": args.model} if args.model else None)
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    if args.cpus:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cpus]))
    source = {"sample": SAMPLE, "camera": "0"}.get(args.source, args.source)
    if source == "0":
        log.error("--source camera: benchmark a recorded clip instead; a camera's own rate "
                  "caps the figures (use python -m edge and its stats lines)")
        return 2
    if not Path(source).is_file():
        log.error("--source %s: no such video file", source)
        return 2
    model = Path(cfg.model.path)
    workers = args.workers or cfg.pipeline.workers
    try:
        main_clfs = _classifiers(model, cfg, max(workers, args.max_workers if args.compare
                                                 else workers))
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    cap = cv2.VideoCapture(source)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    card = main_clfs[0].card
    report: dict = {
        "machine": machine(),
        "runtime": f"{main_clfs[0].runtime.name} {main_clfs[0].runtime.version}",
        "model": {"path": str(model), "mode": card.mode, "id": card.id,
                  "threads": cfg.model.threads},
        "source": {"path": source, "size": list(size)},
        "detector": dataclasses.asdict(cfg.detector),
        "frames": args.frames, "warmup": args.warmup, "rate": args.rate,
    }
    # Timed first, while nothing else in this process runs.
    report["classifier"] = {"threads": cfg.model.threads,
                            **classify_latency(main_clfs[0], args.latency_runs)}
    report["pipeline"] = {"workers": workers, **run_pipeline(
        cfg, source, main_clfs[:workers], args.frames, args.warmup, args.rate)}
    if args.compare:
        rows = [{"name": "sequential loop (no pipeline)", **run_sequential(
            cfg, source, main_clfs[0], args.frames, args.warmup)}]
        for n in range(1, args.max_workers + 1):
            rows.append({"name": f"threaded, {n} worker(s), {card.mode}", **run_pipeline(
                cfg, source, main_clfs[:n], args.frames, args.warmup)})
        full = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, full_every=1))
        if cfg.detector.full_every > 1:
            rows.append({"name": f"threaded, {args.max_workers} w, full detect each frame",
                         **run_pipeline(full, source, main_clfs[:args.max_workers],
                                        args.frames, args.warmup)})
        for mode, path in sibling_models(model).items():
            if path.resolve() == model.resolve():
                continue
            clfs = _classifiers(path, cfg, args.max_workers)
            alone = classify_latency(clfs[0], args.latency_runs)
            rows.append({"name": f"threaded, {args.max_workers} worker(s), {mode}",
                         **run_pipeline(cfg, source, clfs, args.frames, args.warmup),
                         "mode": mode, "classifier": {"threads": cfg.model.threads, **alone}})
        report["compare"] = rows
    report["peak_rss_mb"] = peak_rss_mb()

    pr = report["pipeline"]
    m = report["machine"]
    print(f"machine   {m['cpu']}, {m['cores_used']}/{m['cores']} cores, Python {m['python']}")
    print(f"runtime   {report['runtime']}; model {model} ({card.mode}), "
          f"{cfg.model.threads} thread(s)/worker")
    d = cfg.detector
    print(f"detector  width {d.detect_width}, scale {d.scale_factor}, neighbours "
          f"{d.min_neighbors}, min size {d.min_size}, full every {d.full_every} frame(s)")
    print(f"source    {source} {size[0]}x{size[1]}; {args.frames} frames after "
          f"{args.warmup} warm-up" + (f"; replayed at {args.rate} fps" if args.rate else ""))
    lat = report["classifier"]
    print(f"\nclassifier alone ({card.mode}, batch 1, {cfg.model.threads} thread(s)): "
          f"{lat['p50_ms']:.3f} ms per face (median of {lat['runs']}), p95 {lat['p95_ms']:.3f}")
    print(f"\npipeline, {workers} worker(s): {pr['fps']:.1f} frames/s, CPU {pr['cpu_percent']:.0f}%"
          f", dropped {pr['dropped']}, faces/frame {pr['faces_per_frame']:.2f}, frames with a "
          f"face {pr['frames_with_face']}/{pr['frames']}, peak RSS {report['peak_rss_mb']} MB")
    print(stage_table(pr["stages_ms"]))
    if args.compare:
        print("\ncomparison (same frames):")
        print(compare_table(report["compare"]))
        print("\nclassifier alone, per mode (batch 1, median / p95 ms per face):")
        alone = [(card.mode, report["classifier"])] + [
            (r["mode"], r["classifier"]) for r in report["compare"] if "classifier" in r]
        for mode, lat in alone:
            print(f"  {mode:<10}{lat['p50_ms']:>9.3f}{lat['p95_ms']:>9.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
