"""``python -m convert.from_tflite``: the float Keras model an int8 TFLite model stands for.

When a shipped int8 model's Keras source is lost, its weights are still in the file: int8
with a scale per output channel, biases int32, BatchNormalization already folded in and
the model's ``Rescaling(1/255)`` folded into the first convolution. This rebuilds the
preset's folded architecture (the one :func:`train.quant_aware.strip` gives), fills it
with the dequantized weights, and checks on real faces that it agrees with the int8 file
(the same parity figures as ``convert.quantize``). The result fine-tunes and re-quantizes
like any trained model; the weights carry the int8 rounding, which is why the check
compares with the file it came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from edge.model import EmotionClassifier, ModelError, card_path_for
from edge.model_files import sha256_of
from train.config import Arch, choices
from train.data import add_data_options, check_data_options
from train.faceset import DataError

log = logging.getLogger("convert.from_tflite")


def dequantized_weights(model_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(kernel, bias)`` of each CONV_2D and FULLY_CONNECTED op, in graph order, float32,
    in Keras' layout (``[h, w, in, out]`` and ``[in, out]``)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    found = []
    for op in interp._get_ops_details():  # the op list is not public in LiteRT 2.3
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        _, w_index, b_index = op["inputs"]
        kernel = _dequantize(interp, tensors[w_index])
        bias = _dequantize(interp, tensors[b_index])
        kernel = (kernel.transpose(1, 2, 3, 0) if op["op_name"] == "CONV_2D"
                  else kernel.transpose(1, 0))
        found.append((kernel.astype(np.float32), bias.astype(np.float32)))
    return found


def _dequantize(interp: object, detail: dict) -> np.ndarray:
    raw = interp.get_tensor(detail["index"])  # type: ignore[attr-defined]
    if raw.dtype == np.float32:
        return raw
    params = detail["quantization_parameters"]
    scales = np.asarray(params["scales"], np.float64)
    zeros = np.asarray(params["zero_points"], np.float64)
    axis = int(params["quantized_dimension"])
    shape = [1] * raw.ndim
    if scales.size > 1:
        shape[axis] = scales.size
    return (raw.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)


def rebuild(model_path: Path, arch: str) -> object:
    """The folded float ``arch`` model holding ``model_path``'s weights."""
    from keras import layers

    from train import presets, quant_aware

    model = quant_aware.strip(quant_aware.prepare(presets.build(arch)))
    weighted = [layer for layer in model.layers if isinstance(layer, (layers.Conv2D,
                                                                       layers.Dense))]
    weights = dequantized_weights(model_path)
    if [k.shape for k, _ in weights] != [tuple(layer.kernel.shape) for layer in weighted]:
        raise ModelError(f"{model_path}: its layers do not match the '{arch}' preset; pass "
                         "the --arch it was trained as")
    # Rescaling(1/255) sits in front of the first convolution in the Keras model; the file
    # folded it into that convolution's weights.
    rescale = next(layer for layer in model.layers if isinstance(layer, layers.Rescaling))
    for i, (layer, (kernel, bias)) in enumerate(zip(weighted, weights, strict=True)):
        layer.set_weights([kernel / rescale.scale if i == 0 else kernel, bias])
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convert.from_tflite",
                                description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("--model", required=True, help="the int8 .tflite (with its card)")
    p.add_argument("--arch", default="edge-plus", choices=choices(Arch),
                   help="the preset it was trained as (default edge-plus)")
    p.add_argument("--out", required=True, help="the .keras file to write")
    add_data_options(p, None)
    p.add_argument("--usage", default="PublicTest", help="split of the agreement check")
    p.add_argument("--write-card", action="store_true",
                   help="record the rebuilt source (file, sha256, command, check) in the "
                        "model's card as float_source")
    args = p.parse_args(argv)
    check_data_options(p, args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model_path, out = Path(args.model), Path(args.out)
    if not model_path.is_file():
        log.error("%s: no such model file", model_path)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from convert.parity import compare
    from train.data import load

    try:
        classifier = EmotionClassifier(model_path)
        model = rebuild(model_path, args.arch)
        faces = load(args.data, (args.usage,))[args.usage]
    except (ModelError, DataError) as exc:
        log.error("%s", exc)
        return 2
    keras_probs = model.predict(faces.images[..., None].astype(np.float32), batch_size=256,
                                verbose=0)
    parity = compare(keras_probs, classifier.classify_many(faces.images), faces.labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)  # built fresh, never compiled: no optimizer state in the file
    record = {"keras": str(out), "sha256": sha256_of(out), "arch": args.arch,
              "made_from": {"tflite": str(model_path), "sha256": sha256_of(model_path)},
              "command": shlex.join(["python", "-m", "convert.from_tflite",
                                     *(sys.argv[1:] if argv is None else argv)]),
              "check": {"split": args.usage, "data": str(args.data), **parity}}
    if args.write_card:
        card_path = card_path_for(model_path)
        card = json.loads(card_path.read_text())
        card["float_source"] = record
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    log.info("wrote %s (%d KB): top-1 agreement with %s %.4f on %d %s faces", out,
             out.stat().st_size // 1024, model_path.name, parity["top1_agreement"],
             parity["count"], args.usage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
