"""``python -m convert.quantize``: Keras -> TFLite, model card, parity check.

Writes ``<out>/<name>_<mode>.tflite`` and its card ``<name>_<mode>.json`` for each mode,
runs the converted model through the device's own classifier (``edge.model``) on the
validation split, compares it with the Keras model and fails when they disagree.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.measure.latency import classify_latency
from edge.model import EmotionClassifier, ModelCard, ModelError
from edge.model_files import MODES, model_filename, sha256_of
from edge.preprocessing import EMOTIONS, FACE_SIZE, PREPROCESSING
from edge.runtime.sysinfo import describe
from train.data import CALIBRATION_FACES, add_data_options, check_data_options

if TYPE_CHECKING:
    import keras

    from train.faceset import FaceSet
    from train.ferplus import Votes

log = logging.getLogger("convert")



class ConvertError(RuntimeError):
    """A problem with the inputs the user gave (exit code 2)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m convert.quantize",
        description="Convert a trained .keras model to TFLite, write its model card, and check "
                    "that the converted model agrees with the original.")
    p.add_argument("--model", required=True, help="trained model (.keras), e.g. runs/X/best.keras")
    add_data_options(p, "the card also records agreement with the FER+ majority on --usage")
    p.add_argument("--out", default="models", help="output folder (default models/)")
    p.add_argument("--mode", default="int8", choices=(*MODES, "all"),
                   help="int8 (default): full-integer; float16; dynamic; float32; all: every mode")
    p.add_argument("--name", default="emotion", help="file name prefix (default emotion)")
    p.add_argument("--io-type", default="int8", choices=("int8", "uint8"),
                   help="input/output tensor type of the int8 model (default int8)")
    p.add_argument("--calibration", type=int, default=CALIBRATION_FACES,
                   help="faces drawn from Training (stratified) to calibrate int8 "
                        f"(default {CALIBRATION_FACES})")
    p.add_argument("--usage", default="PublicTest",
                   help="split for the parity check (default PublicTest)")
    p.add_argument("--record", default="", metavar="METRICS_JSON",
                   help="the training run's metrics.json, for the card (default: the one "
                        "next to --model)")
    p.add_argument("--min-agreement", type=float, default=0.98,
                   help="fail when top-1 agreement with Keras is below this (default 0.98)")
    p.add_argument("--reference", default="", metavar="MODEL",
                   help="float .keras model the parity check compares with (default: --model; "
                        "for a model from python -m train --quantize-aware, the model it "
                        "fine-tuned)")
    p.add_argument("--flip-average", action="store_true",
                   help="fold horizontal-flip test-time averaging into the model (2x compute)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--latency-runs", type=int, default=300,
                   help="single-face invokes timed per mode with --mode all (default 300)")
    args = p.parse_args(argv)
    check_data_options(p, args)
    if args.min_agreement < 0.0:
        p.error("--min-agreement must be >= 0 (a value above 1 always fails the gate)")
    if args.calibration <= 0:
        p.error("--calibration must be > 0")
    return args


def _check_inputs(args: argparse.Namespace) -> Path:
    model = Path(args.model)
    if not model.is_file():
        raise ConvertError(f"{model}: no such model file (expected a .keras from python -m train)")
    if model.suffix not in (".keras", ".h5"):
        raise ConvertError(f"{model}: not a Keras model file (.keras); got '{model.suffix}'")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConvertError(f"{out}: output folder cannot be written ({exc.strerror})") from None
    return out


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "numpy"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.config import tensorflow_missing

    if tensorflow_missing("python -m convert.quantize"):
        return 2
    command = shlex.join(["python", "-m", "convert.quantize", *(sys.argv[1:] if argv is None
                                                                 else argv)])
    try:
        return _run(args, command)
    except ConvertError as exc:
        log.error("%s", exc)
        return 2


@dataclass
class _Inputs:
    """What every mode's conversion and check share."""

    model: keras.Model
    training: dict | None
    reference_path: Path
    reference: np.ndarray  # the reference model's probabilities on the parity split
    calibration: np.ndarray
    val: FaceSet
    votes: Votes | None


def _prepare(args: argparse.Namespace) -> _Inputs:
    """Load the model, its reference, the data and the votes (TensorFlow from here on)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.data import load, stratified_sample
    from train.faceset import DataError
    from train.ferplus import load_votes

    model = _load_keras(Path(args.model), args.flip_average)
    training = _training_summary(Path(args.record) if args.record
                                 else Path(args.model).parent / "metrics.json")
    reference_path = _reference_path(args, training)
    reference_model = (model if reference_path == Path(args.model)
                       else _load_keras(reference_path, args.flip_average))
    try:
        splits = load(args.data, ("Training", args.usage))
        votes = (load_votes(args.ferplus, splits[args.usage], args.usage) if args.ferplus
                 else None)
    except DataError as exc:
        raise ConvertError(str(exc)) from None
    calib_idx = stratified_sample(splits["Training"].labels, args.calibration, args.seed)
    val = splits[args.usage]
    log.info("parity check against %s on %s", reference_path, val.source)
    reference = reference_model.predict(val.images[..., None].astype(np.float32),
                                        batch_size=256, verbose=0)
    return _Inputs(model, training, reference_path, reference,
                   splits["Training"].images[calib_idx], val, votes)


def _run(args: argparse.Namespace, command: str) -> int:
    out = _check_inputs(args)
    inputs = _prepare(args)
    rows, failed = [], []
    for mode in MODES if args.mode == "all" else (args.mode,):
        card = _convert_mode(args, inputs, mode, out, command)
        rows.append(card)
        parity = card["parity"]
        if not parity["passed"]:
            failed.append(f"{mode}: top-1 agreement {parity['top1_agreement']:.4f} < "
                          f"--min-agreement {args.min_agreement:.4f}")
    print(_table(rows))
    if failed:
        log.error("parity check failed (the converted model disagrees with the Keras model "
                  "too often; the card records passed=false): %s", "; ".join(failed))
        return 1
    return 0


def _convert_mode(args: argparse.Namespace, inputs: _Inputs, mode: str, out: Path,
                  command: str) -> dict:
    """Convert to ``mode``, check it on the device classifier, write the model and its card."""
    from convert.parity import compare
    from convert.tflite import convert
    from train.scores import card_scores

    log.info("converting %s to %s", args.model, mode)
    tflite_path = out / model_filename(args.name, mode)
    tflite_path.write_bytes(convert(inputs.model, mode, inputs.calibration,
                                    io_type=args.io_type))
    card = {
        "id": f"{tflite_path.stem}-{sha256_of(tflite_path)[:8]}",
        "model_file": tflite_path.name,
        "mode": mode,
        "labels": list(EMOTIONS),
        "preprocessing": PREPROCESSING,
        "sha256": sha256_of(tflite_path),
        "size_bytes": tflite_path.stat().st_size,
        "source": {"keras": str(args.model), "sha256": sha256_of(args.model),
                   "flip_average": bool(args.flip_average)},
        "calibration": ({"faces": len(inputs.calibration), "split": "Training",
                         "seed": args.seed, "stratified": True} if mode == "int8" else None),
        "command": command,
        "versions": {**_versions(), "python": platform.python_version()},
        "training": inputs.training,
    }
    classifier = EmotionClassifier(tflite_path, ModelCard.from_dict(card), threads=1)
    card["input"] = _tensor_card(classifier, "input")
    card["output"] = _tensor_card(classifier, "output")
    val = inputs.val
    probs = classifier.classify_many(val.images)
    parity = compare(inputs.reference, probs, val.labels)
    parity.update(reference={"keras": str(inputs.reference_path),
                             "sha256": sha256_of(inputs.reference_path)},
                  split=args.usage, data=str(args.data), min_agreement=args.min_agreement,
                  passed=parity["top1_agreement"] >= args.min_agreement)
    card["parity"] = parity
    card.update(card_scores(args.usage, val.labels, probs.argmax(axis=1), inputs.votes,
                            args.ferplus))
    if args.mode == "all":
        timed = classify_latency(classifier, args.latency_runs, face=val.images[0])
        runtime = classifier.runtime
        card["latency_ms_per_face"] = {
            "median": timed["p50_ms"], "p95": timed["p95_ms"],
            "runs": args.latency_runs, "threads": 1, "batch": 1,
            "runtime": f"{runtime.name} {runtime.version}", "machine": describe()}
    card_path = tflite_path.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    log.info("wrote %s and %s", tflite_path, card_path)
    return card


def _load_keras(path: Path, flip_average: bool) -> keras.Model:
    """A Keras emotion model from ``path`` (flip-averaged if asked), checked to fit the data."""
    import keras

    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise ConvertError(f"{path}: cannot be loaded as a Keras model ({exc})") from None
    if flip_average:
        from train.presets import with_flip_averaging

        model = with_flip_averaging(model)
    in_shape = tuple(model.inputs[0].shape[1:])
    if in_shape != (FACE_SIZE, FACE_SIZE, 1) or model.outputs[0].shape[-1] != len(EMOTIONS):
        raise ConvertError(
            f"{path}: model takes {in_shape} and gives {model.outputs[0].shape[-1]} "
            f"outputs; the data is {FACE_SIZE}x{FACE_SIZE}x1 faces with {len(EMOTIONS)} classes")
    return model


def _reference_path(args: argparse.Namespace, training: dict | None) -> Path:
    """The float model the converted one must agree with.

    ``--reference`` when given. A model fine-tuned by ``python -m train --quantize-aware``
    stands for the model it started from, so that one, when it is still where the run
    recorded it. Otherwise the model being converted.
    """
    if args.reference:
        reference = Path(args.reference)
        if not reference.is_file():
            raise ConvertError(f"--reference {reference}: no such model file")
        return reference
    config = (training or {}).get("config", {})
    parent = (training or {}).get("init_from", {}).get("model")
    if config.get("quantize_aware") and parent:
        if Path(parent).is_file():
            return Path(parent)
        log.warning("%s was fine-tuned quantization-aware from %s, which is not there; the "
                    "parity check compares with %s itself (pass --reference to change it)",
                    args.model, parent, args.model)
    return Path(args.model)


def _training_summary(metrics: Path) -> dict | None:
    """What ``python -m train`` recorded about the model (its ``metrics.json``), if present."""
    if not metrics.is_file():
        return None
    m = json.loads(metrics.read_text())
    keep = ("arch", "params", "macs", "epochs", "best_epoch", "selection", "wall_time_s", "seed",
            "stream_seed", "data", "data_sha256", "labels", "ferplus", "config", "machine",
            "command", "init_from", "teachers")
    summary = {k: m[k] for k in keep if k in m}
    if "test" in m:
        summary["test"] = {"split": m.get("test_usage"), "accuracy": m["test"]["accuracy"],
                           "macro_f1": m["test"]["macro_f1"]}
    if "test_ferplus" in m:
        summary["test_ferplus"] = {"split": m.get("test_usage"),
                                   "accuracy": m["test_ferplus"]["accuracy"],
                                   "macro_f1": m["test_ferplus"]["macro_f1"],
                                   **({"paper_accuracy": m["test_ferplus"]["paper"]["accuracy"]}
                                      if "paper" in m["test_ferplus"] else {})}
    return summary


def _tensor_card(classifier: EmotionClassifier, which: str) -> dict:
    if which == "input":
        dtype, (scale, zero) = classifier.input_dtype, classifier.input_quantization
        shape = [1, FACE_SIZE, FACE_SIZE, 1]
    else:
        dtype, (scale, zero) = classifier.output_dtype, classifier.output_quantization
        shape = [1, len(classifier.labels)]
    quantized = dtype != np.float32
    return {"shape": shape, "dtype": str(dtype),
            "scale": scale if quantized else None, "zero_point": zero if quantized else None}


def _table(rows: list[dict]) -> str:
    head = (f"{'mode':<9}{'size KB':>9}{'keras acc':>11}{'tflite acc':>12}{'agree':>8}"
            f"{'mean|dp|':>10}{'max|dp|':>9}{'ms/face':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        p = r["parity"]
        lat = r.get("latency_ms_per_face", {}).get("median")
        lines.append(
            f"{r['mode']:<9}{r['size_bytes'] / 1024:>9.1f}{p['keras_accuracy']:>11.4f}"
            f"{p['tflite_accuracy']:>12.4f}{p['top1_agreement']:>8.4f}"
            f"{p['mean_abs_prob_diff']:>10.5f}{p['max_abs_prob_diff']:>9.4f}"
            f"{lat if lat is not None else '-':>9}")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModelError as exc:
        log.error("%s", exc)
        sys.exit(1)
