"""``python -m edge.predict IMAGE...``: the emotions of the faces in saved images.

Prints each face's emotion and probabilities (or JSON with ``--json``), and can draw
the boxes and labels (``--annotate``) and a per-face probability chart (``--chart``).
Uses the device's detector and classifier, with the same settings as the service.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge.annotate import draw_faces, probability_chart
from edge.capture.image_files import (
    IMAGE_SUFFIXES,
    ImageError,
    check_writable_suffix,
    read_image,
    write_image,
)
from edge.capture.sources import list_images
from edge.config import Config, is_glob, load
from edge.model import EmotionClassifier
from edge.vision.faces import FaceDetector
from edge.vision.photo_labels import predict_image

log = logging.getLogger("edge.predict")


def _out_path(out: str, image: Path, many: bool, suffix: str) -> Path:
    if not many:
        return Path(out)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{image.stem}{suffix}"


def _not_there(name: str) -> str | None:
    """Why the image argument ``name`` names nothing, if it does not (globs: later)."""
    if is_glob(name):
        return None
    try:
        return None if Path(name).exists() else "no such file or folder"
    except OSError as exc:  # a name too long for the file system, say
        return exc.strerror or str(exc)


def _output_problem(out: str, many: bool) -> str | None:
    """Why ``out`` cannot take the outputs (one file, or a folder for several), if so."""
    try:
        Path(out).exists()
    except OSError as exc:  # a name too long for the file system, say
        return f"{out[:80]}: {exc.strerror or exc}"
    if many:
        return (f"{out}: a file; several images need a folder to write into"
                if Path(out).exists() and not Path(out).is_dir() else None)
    if Path(out).is_dir():
        return f"{out}: a folder; one image needs a file name (e.g. out.jpg)"
    try:
        check_writable_suffix(out)
    except ImageError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.predict",
                                description="Emotions of the faces in images.")
    p.add_argument("images", nargs="+", help="image files, folders or globs")
    p.add_argument("--config", help="YAML config for detector and model settings")
    p.add_argument("--model", help="the .tflite model (default: model.path of the config)")
    p.add_argument("--annotate", metavar="OUT",
                   help="draw boxes and labels: a file for one image, a folder for several")
    p.add_argument("--chart", metavar="OUT.png",
                   help="per-face probability bars: a file for one image, a folder for several")
    p.add_argument("--json", action="store_true", help="print JSON (one object per image)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from edge.assemble import STARTUP_ERRORS, build_classifiers, build_detector

    try:
        cfg = load(args.config, {"model.path": args.model} if args.model else None)
        detector = build_detector(cfg)
        (classifier,) = build_classifiers(cfg, 1)
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    problems = {a: why for a in args.images if (why := _not_there(a))}
    missing = list(problems)
    for name, why in problems.items():
        log.error("%s: %s", name[:200], why)
    paths = list_images([a for a in args.images if a not in missing])
    for flag, out in (("--annotate", args.annotate), ("--chart", args.chart)):
        problem = _output_problem(out, len(paths) > 1) if out else None
        if problem:
            log.error("%s %s", flag, problem)
            return 2
    if not paths:
        if len(missing) < len(args.images):
            log.error("no images found in %s (looked for %s)", " ".join(
                a for a in args.images if a not in missing), ", ".join(sorted(IMAGE_SUFFIXES)))
        return 2
    try:
        return _predict_all(args, paths, cfg, detector, classifier)
    except KeyboardInterrupt:
        return 130  # the shell's convention for Ctrl-C, without a traceback


def _predict_all(args: argparse.Namespace, paths: list[Path], cfg: Config,
                 detector: FaceDetector, classifier: EmotionClassifier) -> int:
    """Label every image: 0 when all went well, 1 when an output could not be written,
    2 when no image could be read (unreadable ones are skipped, logged and counted)."""
    many = len(paths) > 1
    failed = unreadable = 0
    for path in paths:
        try:
            image = read_image(path)
        except ImageError as exc:
            log.error("%s (skipped)", exc)
            unreadable += 1
            continue
        faces = predict_image(image, detector, classifier, cfg.detector.margin)
        if args.json:
            print(json.dumps({"image": str(path), "model": classifier.card.id, "faces": faces}))
        else:
            print(f"{path}: {len(faces)} face(s)")
            for i, f in enumerate(faces, 1):
                ranked = sorted(f["probs"].items(), key=lambda kv: -kv[1])[:3]
                others = ", ".join(f"{k} {v:.0%}" for k, v in ranked[1:])
                print(f"  face {i} at {f['box']}: {f['emotion']} {f['confidence']:.0%} "
                      f"({others})")
        if args.annotate:
            out = _out_path(args.annotate, path, many, "_annotated.jpg")
            draw_faces(image, [tuple(f["box"]) for f in faces], [f["emotion"] for f in faces],
                       [f["confidence"] for f in faces])
            try:
                write_image(out, image)
            except (OSError, ImageError) as exc:
                log.error("%s", exc)
                failed += 1
            else:
                print(f"{path}: annotated image written to {out}", file=sys.stderr)
        if args.chart and faces:
            out = _out_path(args.chart, path, many, "_chart.png")
            try:
                probability_chart([f["probs"] for f in faces], out, title=path.name)
            except (OSError, ImageError) as exc:
                log.error("%s", exc)
                failed += 1
            else:
                print(f"{path}: chart written to {out}", file=sys.stderr)
    if unreadable:
        log.error("%d of %d image(s) could not be read", unreadable, len(paths))
    if unreadable == len(paths):
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
