"""``python -m train.evaluate``: accuracy and per-class metrics of a ``.keras`` or ``.tflite``.

A ``.tflite`` model is run through the device's own classifier (:mod:`edge.model`), so the
figures are what the device will do. Several models are evaluated as an ensemble (their
probabilities averaged), which is how ``python -m train --teacher`` combines teachers: the
way to measure a candidate teacher before distilling from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from train.data import DataError, FaceSet, load
from train.metrics import classification_metrics, format_table, plot_confusion

log = logging.getLogger("train.evaluate")


def predict_probs(model_path: str | Path, faces: np.ndarray, threads: int = 1,
                  flip_average: bool = False) -> np.ndarray:
    """Class probabilities of ``(N, 48, 48)`` uint8 faces from a ``.keras`` or ``.tflite``.

    ``flip_average`` (Keras only) averages each face with its mirror image, as a model
    converted with ``--flip-average`` does in its graph.
    """
    path = Path(model_path)
    if path.suffix == ".tflite":
        from convert.parity import classify_all
        from edge.model import EmotionClassifier

        return classify_all(EmotionClassifier(path, threads=threads), faces)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(path)
    if flip_average:
        from train.presets import with_flip_averaging

        model = with_flip_averaging(model)  # the very graph --flip-average converts
    return model.predict(faces[..., None].astype(np.float32), batch_size=256, verbose=0)


def evaluate(model_path: str | Path | Sequence[str | Path], faces: FaceSet, threads: int = 1,
             flip_average: bool = False) -> dict:
    """Metrics of a model, or of an ensemble of models, on ``faces``.

    Args:
        model_path: one ``.keras`` / ``.tflite``, or several whose probabilities are averaged.
        faces: the faces and labels to score.
        threads: interpreter threads for ``.tflite`` models.
        flip_average: average each Keras model over each face and its mirror image.

    Returns:
        :func:`classification_metrics` of the (averaged) top class, plus ``model`` (the
        paths, joined with `` + ``) and ``data``.
    """
    paths = [model_path] if isinstance(model_path, str | Path) else list(model_path)
    probs = np.mean([predict_probs(p, faces.images, threads, flip_average) for p in paths],
                    axis=0)
    result = classification_metrics(faces.labels, probs.argmax(axis=1))
    result["model"] = " + ".join(map(str, paths))
    result["data"] = faces.source
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Evaluate a .keras or .tflite emotion model on a FER-2013 split.")
    p.add_argument("--model", required=True, action="append",
                   help=".keras or .tflite (with its .json card); repeat to evaluate an "
                        "ensemble (probabilities averaged)")
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz",
                   help="FER-2013 CSV or image folder")
    p.add_argument("--usage", default="PublicTest", help="split to evaluate (default PublicTest)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--confusion", metavar="PNG", help="also save the confusion matrix here")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for .tflite")
    p.add_argument("--flip-average", action="store_true",
                   help="(.keras) average each face with its mirror image")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    models = [Path(m) for m in args.model]
    for model in models:
        if not model.is_file():
            log.error("%s: no such model file", model)
            return 2
        if model.suffix not in (".keras", ".tflite", ".h5"):
            log.error("%s: expected a .keras or .tflite model", model)
            return 2
    try:
        faces = load(args.data, (args.usage,))[args.usage]
    except DataError as exc:
        log.error("%s", exc)
        return 2
    from edge.model import ModelError

    try:
        if args.flip_average and any(m.suffix == ".tflite" for m in models):
            log.error("--flip-average is for .keras models; a .tflite converted with "
                      "--flip-average already averages in its graph")
            return 2
        result = evaluate(models, faces, args.threads, args.flip_average)
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    if args.confusion:
        plot_confusion(result["confusion"], Path(args.confusion),
                       f"{' + '.join(m.name for m in models)} on {args.usage} "
                       f"(accuracy {result['accuracy']:.3f})")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['model']} on {faces.source}")
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
