"""Keras model -> TFLite flatbuffer in one of the supported modes."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from edge.model_files import MODES
from edge.preprocessing import INPUT_SHAPE
from train.data import calibration_inputs

log = logging.getLogger(__name__)

#: Conversion modes, smallest/fastest first.


def convert(model: tf.keras.Model, mode: str, calibration: np.ndarray | None = None,
            io_type: str = "int8") -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    The model is exported as a SavedModel with a dynamic batch dimension and converted
    from there, the converter path that handles Keras 3 models. A fixed batch of 1 saves
    a few shape ops but its reshape cannot be resized, and the device classifies all
    faces of a frame in one batched invoke.

    Args:
        model: a Keras model taking ``(N, 48, 48, 1)`` float raw pixels 0..255.
        mode: ``int8`` (full-integer, int8 or uint8 I/O), ``float16`` (fp16 weights),
            ``dynamic`` (int8 weights, float activations) or ``float32``.
        calibration: ``(K, 48, 48)`` uint8 faces for int8 calibration (raw pixels).
        io_type: ``int8`` or ``uint8`` input/output tensors for ``int8`` mode.

    Returns:
        The ``.tflite`` file contents.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")

    with tempfile.TemporaryDirectory(prefix="emotion-export-") as saved:
        model.export(saved, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)])
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        _configure(converter, mode, calibration, io_type)
        return converter.convert()


def _configure(converter: tf.lite.TFLiteConverter, mode: str, calibration: np.ndarray | None,
               io_type: str) -> None:
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 conversion needs calibration faces")
        if io_type not in ("int8", "uint8"):
            raise ValueError(f"io_type must be int8 or uint8, got '{io_type}'")
        converter.representative_dataset = lambda: _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if io_type == "int8" else tf.uint8
        converter.inference_output_type = converter.inference_input_type


def _representative(faces: np.ndarray) -> Iterator[list[np.ndarray]]:
    for x in calibration_inputs(faces):
        yield [x[None]]
