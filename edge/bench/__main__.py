"""``python -m edge.bench``: frames per second and per-stage latency of the real pipeline.

First times the classifier alone (one face per call, as the model card's ``ms per face``),
then runs the same pipeline code as the service (``edge.runtime.pipeline``) over a video, after a
warm-up, and reports end-to-end frames per second, per-stage latency percentiles,
capture-to-result latency, drops, faces per frame, CPU and peak memory, and the machine.
``--compare`` adds, on the same frames, the sequential single-thread loop (read, detect,
classify, repeat), the threaded pipeline with 1..N workers, the periodic schedule and a
full-frame search on every frame (with whether each reports the same faces and ``changed``
events as the full search), decoding alone, and every model mode found next to the model,
each mode also timed alone. ``--rate`` replays the file on a clock, as a camera would
deliver it; ``--size`` re-encodes the clip at another resolution first (a 720p camera);
``--raw`` decodes it first and replays it from memory (a camera delivering raw frames);
``--grid CxR`` tiles it into a crowd and counts the faces found per frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

from edge.assemble import STARTUP_ERRORS, build_classifiers, build_detector, describe_detector
from edge.capture.image_files import ImageError, read_image
from edge.config import Config, ConfigError, check_utf8_path, load, shipped
from edge.measure.latency import classify_latency
from edge.measure.runs import (
    Grid,
    decode_clip,
    grid_clip,
    peak_rss_mb,
    resized_clip,
    run_decode,
    run_pipeline,
    run_sequential,
)
from edge.model import EmotionClassifier, card_path_for
from edge.model_files import MODES, model_filename
from edge.runtime.sysinfo import machine
from edge.stats import STAGES
from edge.vision.plans import describe_detection
from edge.vision.recall import MATCH_IOU, read_boxes, score

log = logging.getLogger("edge.bench")

SAMPLE = "models/sample/astronaut.mp4"


def sibling_models(model: Path) -> dict[str, Path]:
    """Every mode of the model found next to it (``<prefix>_<mode>.tflite`` with a card)."""
    stem = model.stem
    prefix = stem.rsplit("_", 1)[0] if stem.rsplit("_", 1)[-1] in MODES else stem
    found = {}
    for mode in MODES:
        p = model.with_name(model_filename(prefix, mode))
        if p.is_file() and card_path_for(p).is_file():
            found[mode] = p
    return found or {"model": model}


def _classifiers(path: Path, cfg: Config, n: int) -> list[EmotionClassifier]:
    """``n`` classifiers on the model at ``path`` (its card next to it), as the service
    loads them."""
    model = dataclasses.replace(cfg.model, path=str(path), card=None)
    return build_classifiers(dataclasses.replace(cfg, model=model), n)


def stage_table(stages: dict) -> str:
    lines = [f"  {'stage':<15}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'n':>8}"]
    for key, label in STAGES.items():
        if key in stages:
            s = stages[key]
            lines.append(f"  {label:<15}{s['p50_ms']:>9.3f}{s['p95_ms']:>9.3f}"
                         f"{s['p99_ms']:>9.3f}{s['n']:>8}")
    return "\n".join(lines)


def compare_table(rows: list[dict]) -> str:
    """The ``--compare`` rows side by side; the events column is against the reference."""
    base = rows[0]["fps"]
    ref = next((r for r in rows if r.get("reference")), rows[0])
    head = (f"  {'run':<40}{'fps':>8}{'x seq':>7}{'CPU %':>7}{'drops':>7}"
            f"{'face frames':>13}{'p95 result ms':>15}  events vs full search")
    out = [head, "  " + "-" * (len(head) - 2)]
    for r in rows:
        lat = r.get("stages_ms", {}).get("frame_latency", {}).get("p95_ms")
        out.append(f"  {r['name']:<40}{r['fps']:>8.1f}{r['fps'] / base:>7.2f}"
                   f"{r['cpu_percent']:>7.0f}{r['dropped']:>7}"
                   f"{r['frames_with_face']:>8}/{r['frames']:<4}"
                   f"{lat if lat is not None else '-':>15}  {events_versus(r, ref)}")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    p.add_argument("--raw", action="store_true",
                   help="decode the clip first and replay it from memory: what a camera "
                        "delivering raw frames (Picamera2) costs, without decoding (the "
                        "clip's gray frames are held in memory)")
    p.add_argument("--cpus", type=int, help="pin the process to this many cores")
    p.add_argument("--size", metavar="WxH",
                   help="re-encode the clip at this size first (e.g. 1280x720, as a 720p "
                        "camera delivers), then measure that")
    p.add_argument("--grid", metavar="CxR",
                   help="tile the clip into a C x R crowd (one face per tile, time-shifted, "
                        "one in three mirrored, rows at 100/80/60 %% of their cell) on a "
                        "--size frame (default 1280x720), and count the faces found per "
                        "frame against the C x R present")
    p.add_argument("--save-clip", metavar="PATH",
                   help="also keep the clip measured (after --size/--grid) at PATH, to run "
                        "another tool on the same frames")
    p.add_argument("--compare", action="store_true",
                   help="sequential loop vs threaded 1..N workers vs every model mode")
    p.add_argument("--latency-runs", type=int, default=300,
                   help="single-face classify calls timed per model (default 300)")
    p.add_argument("--web", action="store_true",
                   help="with the web server on (a free loopback port, no client): what "
                        "serving the page costs the pipeline")
    p.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    p.add_argument("--photos", metavar="DIR",
                   help="instead of a clip: the share of hand-boxed faces the configured "
                        "detector finds in the photos of DIR (boxes in DIR/training.xml, "
                        "dlib's format, or --boxes), and its false boxes")
    p.add_argument("--boxes", metavar="XML", help="with --photos: the box file")
    args = p.parse_args(argv)
    if args.frames <= 0 or args.warmup < 0 or args.latency_runs <= 0:
        p.error("--frames and --latency-runs must be > 0 and --warmup >= 0")
    if args.raw and args.compare:
        p.error("--raw measures the pipeline alone; run --compare without it")
    if args.size is not None:
        w, _, h = args.size.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and 16 <= int(w) <= 7680 and 16 <= int(h) <= 4320):
            p.error(f"--size {args.size}: give WIDTHxHEIGHT, e.g. 1280x720 (16..7680 x 16..4320)")
        args.size = (int(w), int(h))
    if args.grid is not None:
        c, _, r = args.grid.lower().partition("x")
        if not (c.isdigit() and r.isdigit() and 1 <= int(c) <= 16 and 1 <= int(r) <= 16):
            p.error(f"--grid {args.grid}: give COLSxROWS, e.g. 4x3 (1..16 each)")
        size = args.size or (1280, 720)
        args.grid = Grid(int(c), int(r), size)
        args.size = None  # the grid is made at that size
    return args


def measure(cfg: Config, args: argparse.Namespace, source: str,
            classifiers: list[EmotionClassifier]) -> dict:
    """Every figure of a benchmark run: classifier alone, pipeline, and ``--compare`` rows."""
    model = Path(cfg.model.path)
    workers = args.workers or cfg.pipeline.workers
    cap = cv2.VideoCapture(source)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    card = classifiers[0].card
    report: dict = {
        "machine": machine(),
        "runtime": f"{classifiers[0].runtime.name} {classifiers[0].runtime.version}",
        "model": {"path": str(model), "mode": card.mode, "id": card.id,
                  "threads": cfg.model.threads},
        "source": {"path": source, "size": list(size)},
        "detector": dataclasses.asdict(cfg.detector),
        "motion": dataclasses.asdict(cfg.motion),
        "schedule": describe_detection(cfg.detector, cfg.motion),
        "frames": args.frames, "warmup": args.warmup, "rate": args.rate, "workers": workers,
        "raw": args.raw,
        **({"grid": [args.grid.cols, args.grid.rows]} if args.grid else {}),
    }
    # Timed first, while nothing else in this process runs.
    report["classifier"] = {"threads": cfg.model.threads,
                            **classify_latency(classifiers[0], args.latency_runs)}
    decoded = decode_clip(source, cfg, args.frames + args.warmup) if args.raw else None
    report["pipeline"] = {"workers": workers, **run_pipeline(
        cfg, source, classifiers[:workers], args.frames, args.warmup, args.rate, decoded,
        args.grid)}
    if args.rate and not args.raw:
        report["decode_at_rate"] = run_decode(cfg, source, args.frames, args.rate)
    if args.compare:
        report["compare"] = _compare_rows(cfg, args, source, classifiers)
    report["peak_rss_mb"] = peak_rss_mb()
    return report


def _compare_rows(cfg: Config, args: argparse.Namespace, source: str,
                  classifiers: list[EmotionClassifier]) -> list[dict]:
    """The sequential loop, 1..N workers, the periodic schedule, a full search on every
    frame, decoding alone, and the other model modes."""
    model, mode = Path(cfg.model.path), classifiers[0].card.mode
    n, frames, warmup = args.max_workers, args.frames, args.warmup
    grid = args.grid
    rows = [{"name": "sequential loop (no pipeline)", **run_sequential(
        cfg, source, classifiers[0], frames, warmup)}]
    for k in range(1, n + 1):
        rows.append({"name": f"threaded, {k} worker(s), {mode}", **run_pipeline(
            cfg, source, classifiers[:k], frames, warmup, grid=grid)})
    rows += _reference_rows(cfg, source, classifiers[:n], frames, warmup, grid)
    rows.append({"name": "decode only (capture + gray)", **run_decode(cfg, source, frames)})
    for other, path in sibling_models(model).items():
        if path.resolve() == model.resolve():
            continue
        clfs = _classifiers(path, cfg, n)
        alone = classify_latency(clfs[0], args.latency_runs)
        rows.append({"name": f"threaded, {n} worker(s), {other}",
                     **run_pipeline(cfg, source, clfs, frames, warmup),
                     "mode": other, "classifier": {"threads": cfg.model.threads, **alone}})
    return rows


def _reference_rows(cfg: Config, source: str, classifiers: list[EmotionClassifier],
                    frames: int, warmup: int, grid: Grid | None) -> list[dict]:
    """The schedules the configured one saves work against, the last one the reference
    whose events the others are compared with: for the cascade the periodic schedule and
    a full search on every frame; for YuNet (a pass every frame already) every face
    classified on every frame."""
    n = len(classifiers)
    if cfg.detector.kind == "yunet":
        every = dataclasses.replace(
            cfg, motion=dataclasses.replace(cfg.motion, classify_every=1),
            detector=dataclasses.replace(cfg.detector, pass_every=1))
        return [{"name": f"threaded, {n} w, a pass and every face classified each frame",
                 "reference": True,
                 **run_pipeline(every, source, classifiers, frames, warmup, grid=grid)}]
    rows = []
    still = dataclasses.replace(cfg.motion, enabled=False)
    if cfg.motion.enabled and cfg.detector.full_every > 1:
        periodic = dataclasses.replace(cfg, motion=still)
        rows.append({"name": f"threaded, {n} w, periodic schedule", **run_pipeline(
            periodic, source, classifiers, frames, warmup, grid=grid)})
    full = dataclasses.replace(cfg, motion=still,
                               detector=dataclasses.replace(cfg.detector, full_every=1))
    rows.append({"name": f"threaded, {n} w, full search each frame", "reference": True,
                 **run_pipeline(full, source, classifiers, frames, warmup, grid=grid)})
    return rows


def events_versus(row: dict, ref: dict) -> str:
    """How ``row``'s reported faces and ``changed`` events compare with the reference run's:
    the same face ids and the same sequence of (face, emotion) changes, and by how many
    frames at most their timing differs."""
    if "changed" not in row:
        return "-"
    if row is ref:
        return f"reference ({len(ref['changed'])})"
    seq = [(f, e) for _, f, e in row["changed"]]
    if len(row["face_ids"]) != len(ref["face_ids"]) or seq != [
            (f, e) for _, f, e in ref["changed"]]:
        return f"differ: {len(row['face_ids'])} id(s), {len(seq)} changed"
    shift = max((abs(a[0] - b[0]) for a, b in zip(row["changed"], ref["changed"],
                                                      strict=True)), default=0)
    return f"same (±{shift} fr)"


def print_report(report: dict, cfg: Config) -> None:
    """The human-readable form of :func:`measure`'s figures."""
    pr, m, src = report["pipeline"], report["machine"], report["source"]
    mode = report["model"]["mode"]
    print(f"machine   {m['cpu']}, {m['cores_used']}/{m['cores']} cores, Python {m['python']}"
          + (f"; {', '.join(m['cpu_flags'])}" if m.get("cpu_flags") else ""))
    print(f"runtime   {report['runtime']}; model {report['model']['path']} ({mode}), "
          f"{cfg.model.threads} thread(s)/worker")
    d = cfg.detector
    if cfg.web.enabled:
        print("web       server on (no client connected)")
    print(f"detector  {describe_detector(cfg)}" + (
        f", width {d.detect_width}, scale {d.scale_factor}, neighbours {d.min_neighbors}"
        if d.kind == "haar" else ""))
    print(f"schedule  {report['schedule']}")
    print(f"source    {src['path']} {src['size'][0]}x{src['size'][1]}; {report['frames']} "
          f"frames after {report['warmup']} warm-up"
          + (f"; replayed at {report['rate']} fps" if report["rate"] else "")
          + ("; decoded first, replayed from memory" if report["raw"] else ""))
    lat = report["classifier"]
    print(f"\nclassifier alone ({mode}, batch 1, {cfg.model.threads} thread(s)): "
          f"{lat['p50_ms']:.3f} ms per face (median of {lat['runs']}), p95 {lat['p95_ms']:.3f}")
    print(f"\npipeline, {pr['workers']} worker(s): {pr['fps']:.1f} frames/s, "
          f"CPU {pr['cpu_percent']:.0f}%, dropped {pr['dropped']}, faces/frame "
          f"{pr['faces_per_frame']:.2f}, frames with a face {pr['frames_with_face']}/"
          f"{pr['frames']}, peak RSS {report['peak_rss_mb']} MB")
    if pr.get("steady_p99_ms") is not None:
        print(f"latency   capture->result p99 {pr['steady_p99_ms']:.0f} ms after the first "
              "second (a scene's first frames, every face new at once, left out)")
    print(f"events    {pr['appeared']} appeared, {len(pr['changed'])} changed, "
          f"{pr['reverted']} of them changed back within 1 s")
    if "crowd" in pr:
        c = pr["crowd"]
        print(f"crowd     {c['found_per_frame']:.2f} of {c['faces_present']} faces found per "
              f"frame ({100 * c['found_share']:.1f} %), {c['false_per_frame']:.3f} false "
              f"faces per frame, {pr['appeared']} appeared events")
    print(stage_table(pr["stages_ms"]))
    if "decode_at_rate" in report:
        dec = report["decode_at_rate"]["cpu_percent"]
        print(f"decoding alone at {report['rate']:g} frames/s: CPU {dec:.0f}% (the pipeline's "
              f"own work: {pr['cpu_percent'] - dec:.0f}%)")
    if "compare" in report:
        print("\ncomparison (same frames):")
        print(compare_table(report["compare"]))
        decode = next((r for r in report["compare"] if r["name"].startswith("decode")), None)
        if decode:
            print(f"\nthe pipeline runs at {100 * pr['fps'] / decode['fps']:.0f} % of the "
                  f"decode-only rate ({decode['fps']:.0f} frames/s)")
        print("\nclassifier alone, per mode (batch 1, median / p95 ms per face):")
        alone = [(mode, report["classifier"])] + [
            (r["mode"], r["classifier"]) for r in report["compare"] if "classifier" in r]
        for name, lat in alone:
            print(f"  {name:<10}{lat['p50_ms']:>9.3f}{lat['p95_ms']:>9.3f}")


def photo_recall(args: argparse.Namespace) -> int:
    """``--photos``: the configured detector's recall on hand-boxed photos (exit code)."""
    folder = Path(args.photos)
    try:
        cfg = load(args.config)
        boxes = read_boxes(Path(args.boxes) if args.boxes else folder / "training.xml")
        detector = build_detector(cfg)
        started = time.perf_counter()
        r = score(folder, boxes, detector.detect,
                  lambda path: read_image(path, cv2.IMREAD_GRAYSCALE))
    except (*STARTUP_ERRORS, ValueError, ImageError) as exc:
        log.error("%s", exc)
        return 2
    took = (time.perf_counter() - started) / max(r.photos, 1)
    print(f"detector  {describe_detector(cfg)}")
    print(f"photos    {r.photos} in {folder}, {r.faces} hand-boxed faces of {r.sizes[0]}-"
          f"{r.sizes[1]} px")
    print(f"found     {r.found} of {r.faces} ({100 * r.share:.1f} %), {r.false} false box(es) "
          f"(a box counts at IoU >= {MATCH_IOU}); {1000 * took:.0f} ms per photo")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.photos:
        return photo_recall(args)
    source = {"sample": str(shipped(SAMPLE)), "camera": "0"}.get(args.source, args.source)
    if source == "0":
        log.error("--source camera: benchmark a recorded clip instead; a camera's own rate "
                  "caps the figures (use python -m edge and its stats lines)")
        return 2
    if not Path(source).is_file():
        log.error("--source %s: no such video file", source)
        return 2
    try:
        check_utf8_path(source, "--source")
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        overrides: dict[str, object] = {"model.path": args.model} if args.model else {}
        if args.web:
            overrides.update({"web.enabled": True, "web.port": 0})
        cfg = load(args.config, overrides)
        workers = args.workers or cfg.pipeline.workers
        classifiers = _classifiers(Path(cfg.model.path), cfg,
                                   max(workers, args.max_workers if args.compare else workers))
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    if args.cpus:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cpus]))
    with tempfile.TemporaryDirectory(prefix="edge-bench-clip-") as tmp:
        if args.size:
            source = resized_clip(source, args.size, args.frames + args.warmup, Path(tmp))
        if args.grid:
            source = grid_clip(source, args.grid, args.frames + args.warmup, Path(tmp))
        if args.save_clip:
            shutil.copyfile(source, args.save_clip)
        report = measure(cfg, args, source, classifiers)
    print_report(report, cfg)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
