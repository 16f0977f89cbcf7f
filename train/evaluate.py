"""``python -m train.evaluate``: accuracy and per-class metrics of a ``.keras`` or ``.tflite``.

A ``.tflite`` model is run through the device's own classifier (:mod:`edge.model`), so the
figures are what the device will do. Several models are evaluated as an ensemble (their
probabilities averaged), which is how ``python -m train --teacher`` combines teachers: the
way to measure a candidate teacher before distilling from it. ``--held-out`` scores the
share of Training a run picks its epoch on instead of a split of the file, so teachers and
candidates can be compared without looking at PublicTest.
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

from train.config import TrainConfig
from train.data import add_data_options, check_data_options, load
from train.faceset import DataError, FaceSet, held_out_split
from train.ferplus import LABEL_MODES, Votes, load_votes, majority_metrics, paper_line, relabel
from train.metrics import classification_metrics, format_table, plot_confusion
from train.scores import card_scores

log = logging.getLogger("train.evaluate")


def predict_probs(model_path: str | Path, faces: np.ndarray, threads: int = 1,
                  flip_average: bool = False) -> np.ndarray:
    """Class probabilities of ``(N, 48, 48)`` uint8 faces from a ``.keras`` or ``.tflite``.

    ``flip_average`` (Keras only) averages each face with its mirror image, as a model
    converted with ``--flip-average`` does in its graph.
    """
    path = Path(model_path)
    if path.suffix == ".tflite":
        from edge.model import EmotionClassifier

        return EmotionClassifier(path, threads=threads).classify_many(faces)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(path)
    if flip_average:
        from train.presets import with_flip_averaging

        model = with_flip_averaging(model)  # the very graph --flip-average converts
    return model.predict(faces[..., None].astype(np.float32), batch_size=256, verbose=0)


def evaluate(model_path: str | Path | Sequence[str | Path], faces: FaceSet, threads: int = 1,
             flip_average: bool = False, votes: Votes | None = None) -> dict:
    """Metrics of a model, or of an ensemble of models, on ``faces``.

    Args:
        model_path: one ``.keras`` / ``.tflite``, or several whose probabilities are averaged.
        faces: the faces and labels to score.
        threads: interpreter threads for ``.tflite`` models.
        flip_average: average each Keras model over each face and its mirror image.
        votes: FER+ votes of ``faces`` (:func:`train.ferplus.load_votes`), to score
            agreement with the FER+ majority too.

    Returns:
        :func:`classification_metrics` of the (averaged) top class against the FER-2013
        labels, plus ``model`` (the paths, joined with `` + ``), ``data``,
        ``predictions`` (the top class per face) and, with ``votes``, ``ferplus``
        (:func:`train.ferplus.majority_metrics`).
    """
    paths = [model_path] if isinstance(model_path, str | Path) else list(model_path)
    probs = np.mean([predict_probs(p, faces.images, threads, flip_average) for p in paths],
                    axis=0)
    result = classification_metrics(faces.labels, probs.argmax(axis=1))
    result["model"] = " + ".join(map(str, paths))
    result["data"] = faces.source
    result["predictions"] = probs.argmax(axis=1).tolist()
    if votes is not None:
        result["ferplus"] = majority_metrics(votes, probs.argmax(axis=1))
    return result


def held_out_faces(data: str | Path, labels: str, votes: str | Path | None,
                   fraction: float = TrainConfig.val_fraction,
                   seed: int = TrainConfig.seed) -> FaceSet:
    """The Training faces a ``python -m train --labels labels`` run holds out to pick its
    epoch (``--val-fraction fraction --seed seed``), labelled as that run sees them.

    A ``ferplus`` run keeps only the faces with a FER+ majority emotion and splits those,
    labelled with the majority; ``fer2013`` and ``mixed`` runs split every face by its
    FER-2013 label.

    Raises:
        DataError: the data or votes file cannot be read, or they do not line up.
        ValueError: ``ferplus`` labels without a votes file.
    """
    faces = load(data, ("Training",))["Training"]
    if labels == "ferplus":
        if not votes:
            raise ValueError("--held-out ferplus splits the faces with a FER+ majority; "
                             "add --ferplus VOTES")
        faces = relabel(faces, load_votes(votes, faces, "Training"), "ferplus")
    return held_out_split(faces, fraction, seed)[1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Evaluate a .keras or .tflite emotion model on a FER-2013 split.")
    p.add_argument("--model", required=True, action="append",
                   help=".keras or .tflite (with its .json card); repeat to evaluate an "
                        "ensemble (probabilities averaged)")
    add_data_options(p, "also score agreement with the FER+ majority")
    p.add_argument("--usage", default="PublicTest", help="split to evaluate (default PublicTest)")
    p.add_argument("--held-out", choices=LABEL_MODES, metavar="LABELS",
                   help="evaluate the share of Training a `python -m train --labels LABELS` "
                        "run holds out to pick its epoch (one of %(choices)s), not --usage")
    p.add_argument("--seed", type=int, default=TrainConfig.seed,
                   help="with --held-out: the run's --seed (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction,
                   help="with --held-out: the run's --val-fraction (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--write-card", action="store_true",
                   help="(one .tflite) record these scores in its model card, replacing the "
                        "card's evaluation (and evaluation_ferplus with --ferplus)")
    p.add_argument("--confusion", metavar="PNG", help="also save the confusion matrix here")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for .tflite")
    p.add_argument("--flip-average", action="store_true",
                   help="(.keras) average each face with its mirror image")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    check_data_options(p, args)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    models = [Path(m) for m in args.model]
    problem = _bad_input(args, models)
    if problem:
        log.error("%s", problem)
        return 2
    usage = "Training" if args.held_out else args.usage
    split = f"held-out {args.val_fraction:.0%} of Training" if args.held_out else usage
    try:
        faces = (held_out_faces(args.data, args.held_out, args.ferplus, args.val_fraction,
                                args.seed) if args.held_out
                 else load(args.data, (usage,))[usage])
        votes = load_votes(args.ferplus, faces, usage) if args.ferplus else None
    except (DataError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    from edge.model import ModelError

    try:
        result = evaluate(models, faces, args.threads, args.flip_average, votes)
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    predictions = np.asarray(result.pop("predictions"))
    if args.write_card:
        _write_card(models[0], usage, faces, predictions, votes, args.ferplus)
    if args.confusion:
        _save_confusion(result, Path(args.confusion), " + ".join(m.name for m in models), split)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print_tables(result, faces, votes)
    return 0


def _bad_input(args: argparse.Namespace, models: list[Path]) -> str | None:
    """The one-line reason the command line cannot be run, or ``None``."""
    for model in models:
        if not model.is_file():
            return f"{model}: no such model file"
        if model.suffix not in (".keras", ".tflite", ".h5"):
            return f"{model}: expected a .keras or .tflite model"
    if args.write_card and (len(models) != 1 or models[0].suffix != ".tflite"):
        return "--write-card records the scores of one .tflite model in its card"
    if args.write_card and args.held_out:
        return "--write-card records a test split's scores; leave out --held-out"
    if args.flip_average and any(m.suffix == ".tflite" for m in models):
        return ("--flip-average is for .keras models; a .tflite converted with "
                "--flip-average already averages in its graph")
    if not 0 < args.val_fraction < 1:
        return f"--val-fraction {args.val_fraction}: give the run's held-out share, in (0, 1)"
    return None


def _save_confusion(result: dict, path: Path, names: str, split: str) -> None:
    """The confusion matrix at ``path``, and the FER+ one beside it when scored."""
    plot_confusion(result["confusion"], path,
                   f"{names} on {split} (accuracy {result['accuracy']:.3f})")
    if "ferplus" in result:
        plot_confusion(result["ferplus"]["confusion"], _ferplus_png(path),
                       f"{names} on {split}, FER+ majority "
                       f"(accuracy {result['ferplus']['accuracy']:.3f})")


def _print_tables(result: dict, faces: FaceSet, votes: Votes | None) -> None:
    print(f"{result['model']} on {faces.source}, {faces.labelled_by}")
    print(format_table(result))
    if votes is not None:
        left = result["ferplus"]["left_out"]
        print(f"\nagainst every face's plain FER+ majority ({votes.source}; left out: "
              + ", ".join(f"{n} {k}" for k, n in left.items()) + ")")
        print(format_table(result["ferplus"]))
        print(paper_line(result["ferplus"]["paper"]))


def _write_card(model: Path, usage: str, faces: FaceSet, predictions: np.ndarray,
                votes: Votes | None, votes_path: str) -> None:
    """Put the scores just measured into ``model``'s card (the model file is untouched)."""
    from edge.model import card_path_for

    card_path = card_path_for(model)
    card = json.loads(card_path.read_text())
    card.update(card_scores(usage, faces.labels, predictions, votes, votes_path or None))
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    log.info("wrote the %s scores into %s", usage, card_path)


def _ferplus_png(path: Path) -> Path:
    """Where the FER+ confusion matrix goes, next to the FER-2013 one."""
    return path.with_name(f"{path.stem}_ferplus{path.suffix}")


if __name__ == "__main__":
    sys.exit(main())
