"""Knowledge distillation: train on a teacher model's soft labels blended with the true ones.

FER-2013 labels are noisy (one annotator per face, many faces ambiguous between fear, sad
and neutral). A trained teacher's probabilities say *how* ambiguous each face is, which a
one-hot label cannot; training the student on a blend of the two is the usual way to pass
a larger (or ensembled) network's knowledge into the small one the device runs.

The teacher (or an ensemble of them) is run once per training face, averaged over the
face and its mirror image, before training starts: no teacher cost per step, so a teacher
many times the student's size costs seconds, not hours. Augmented copies of a face keep
its teacher targets (the augmentations are small pose and lighting changes that do not
change the expression).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from edge.preprocessing import EMOTIONS, INPUT_SHAPE
from train.data import smoothed_onehot
from train.presets import with_flip_averaging


class TeacherError(ValueError):
    """The teacher model is missing or does not classify 48x48 faces into the 7 emotions."""


def teacher_probabilities(sources: Sequence[Path], images: np.ndarray,
                          temperature: float = 1.0, batch_size: int = 256) -> np.ndarray:
    """The teachers' class probabilities for each face, averaged and softened.

    Each teacher is averaged over the face and its mirror image; several teachers (an
    ensemble, usually a better teacher than any one of them) are then averaged together.

    Args:
        sources: ``.keras`` models, each taking raw 48x48x1 pixels and returning 7
            probabilities.
        images: ``(N, 48, 48)`` uint8 faces.
        temperature: above 1 flattens the distribution (``p ** (1/T)``, renormalised), so
            the student sees more of the teacher's second choices.
        batch_size: faces per teacher forward pass.

    Returns:
        ``(N, 7)`` float32 rows summing to 1.

    Raises:
        TeacherError: no teachers, no file at a source, or a model with another input or
            output shape.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if not sources:
        raise TeacherError("teacher: no teacher model given")
    teachers = [_load_teacher(s) for s in sources]  # every file checked before any work
    faces = images[..., None].astype(np.float32)
    probs = np.zeros((len(images), len(EMOTIONS)), np.float64)
    for teacher in teachers:
        probs += teacher.predict(faces, batch_size=batch_size, verbose=0)
    return soften(probs / len(sources), temperature).astype(np.float32)


def _load_teacher(source: Path) -> keras.Model:
    """``source`` as a flip-averaged model, after checking it classifies faces."""
    if not source.is_file():
        raise TeacherError(f"teacher: no model file at {source}")
    teacher = keras.models.load_model(source, compile=False)
    if tuple(teacher.input_shape[1:]) != INPUT_SHAPE or teacher.output_shape[-1] != len(EMOTIONS):
        raise TeacherError(
            f"teacher: {source} maps {teacher.input_shape[1:]} to {teacher.output_shape[1:]}; "
            f"a teacher must map {INPUT_SHAPE} faces to {len(EMOTIONS)} emotion probabilities")
    return with_flip_averaging(teacher)


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1/temperature)`` renormalised per row (the identity at temperature 1)."""
    logp = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def blend_targets(labels: np.ndarray, teacher: np.ndarray, weight: float,
                  label_smoothing: float = 0.0, base: np.ndarray | None = None) -> np.ndarray:
    """Training targets: ``(1 - weight) * smoothed one-hot + weight * teacher``.

    Args:
        labels: ``(N,)`` int label ids.
        teacher: ``(N, 7)`` teacher probabilities.
        weight: share of the target taken from the teacher, in [0, 1].
        label_smoothing: applied to the one-hot part only.
        base: ``(N, 7)`` targets to blend the teacher into instead of the smoothed one-hot
            labels (FER+ vote distributions, see :mod:`train.ferplus`).

    Returns:
        ``(N, 7)`` float32 rows summing to 1.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    own = smoothed_onehot(labels, label_smoothing) if base is None else base
    return ((1.0 - weight) * own + weight * teacher).astype(np.float32)


def agreement(labels: np.ndarray, teacher: np.ndarray) -> float:
    """Share of faces whose label is the teacher's top class (how far it fits the labels)."""
    return float(np.mean(np.argmax(teacher, axis=1) == labels))
