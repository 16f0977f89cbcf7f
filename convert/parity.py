"""How closely a converted model follows its Keras original."""

from __future__ import annotations

import numpy as np


def compare(reference: np.ndarray, converted: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of both, top-1 agreement and probability differences.

    Args:
        reference: ``(N, C)`` probabilities of the Keras model.
        converted: ``(N, C)`` probabilities of the converted model.
        labels: ``(N,)`` true label ids.
    """
    ref_top, conv_top = reference.argmax(axis=1), converted.argmax(axis=1)
    diff = np.abs(reference - converted)
    return {
        "count": len(labels),
        "keras_accuracy": round(float((ref_top == labels).mean()), 4),
        "tflite_accuracy": round(float((conv_top == labels).mean()), 4),
        "top1_agreement": round(float((ref_top == conv_top).mean()), 4),
        "mean_abs_prob_diff": round(float(diff.mean()), 5),
        "max_abs_prob_diff": round(float(diff.max()), 5),
    }
