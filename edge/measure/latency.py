"""The classifier's own speed: what "ms per face" means in the model cards and the README."""

from __future__ import annotations

import time

import numpy as np

from edge.model import EmotionClassifier
from edge.preprocessing import FACE_SIZE


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
