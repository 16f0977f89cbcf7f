"""Warm starts: a run that begins from a trained model's weights (``--init-from``),
optionally with its first convolutions frozen (``--freeze``)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from train import quant_aware

log = logging.getLogger(__name__)


class InitFromError(ValueError):
    """The model named by ``init_from`` is missing or does not fit the preset."""


def init_source(path: str | Path) -> Path:
    """The ``init_from`` model file, which must exist."""
    source = Path(path)
    if not source.is_file():
        raise InitFromError(f"init_from: no model file at {source}")
    return source


def with_parent_weights(model: keras.Model, source: Path) -> keras.Model:
    """``model`` (a fresh preset) holding the weights of the model saved at ``source``.

    A parent with BatchNormalization folded away (a shipped source rebuilt from its int8
    file by ``convert.from_tflite``, or a quantization-aware run's result) gets the
    preset's folded layout instead, so every shipped model can be fine-tuned.
    """
    parent = keras.models.load_model(source, compile=False)
    shapes = [w.shape for w in parent.get_weights()]
    if [w.shape for w in model.get_weights()] != shapes:
        folded = quant_aware.strip(quant_aware.prepare(model))
        if [w.shape for w in folded.get_weights()] != shapes:
            raise InitFromError(f"init_from: {source} is a '{parent.name}' model whose "
                                f"weights do not fit the '{model.name}' preset; pass "
                                f"--arch {parent.name}")
        model = folded
        log.info("%s has BatchNormalization folded in: fine-tuning the folded layout",
                 source)
    model.set_weights(parent.get_weights())
    log.info("starting from the weights of %s", source)
    return model


def freeze(model: keras.Model, blocks: int) -> None:
    """Keep the first ``blocks`` convolutions (and their BatchNormalization) as they are:
    the early, generic feature detectors a few hundred photos should not retrain."""
    convs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            convs += 1
            if convs > blocks:
                break
        if convs and isinstance(layer, (keras.layers.Conv2D,
                                        keras.layers.BatchNormalization)):
            layer.trainable = False
    log.info("frozen: the first %d convolution(s)", min(convs, blocks))
