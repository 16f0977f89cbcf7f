"""A labelled set of faces and the few operations every loader shares.

Kept apart from the loaders (:mod:`train.data`, :mod:`train.own_faces`) so that both can
use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.preprocessing import EMOTIONS

#: Class folder names as redistributions spell them (and as your own photos may be sorted),
#: mapped to label ids.
CLASS_ALIASES: dict[str, int] = {
    "angry": 0, "anger": 0,
    "disgust": 1, "disgusted": 1,
    "fear": 2, "fearful": 2,
    "happy": 3, "happiness": 3,
    "sad": 4, "sadness": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6,
}


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and row or path."""


@dataclass(frozen=True)
class FaceSet:
    """A set of labelled faces.

    Attributes:
        images: ``(N, 48, 48)`` uint8 grayscale faces.
        labels: ``(N,)`` int64 label ids indexing :data:`EMOTIONS`.
        source: where the faces came from (path and split), for messages and cards.
        rows: ``(N,)`` 0-based data-row index of each face in its CSV (header excluded),
            which is how per-row annotations such as FER+ votes join; ``None`` for folders.
        targets: ``(N, 7)`` training distributions when they are not the one-hot labels
            (FER+ votes, see :mod:`train.ferplus`); ``None`` for one-hot labels.
        labelled_by: whose labels ``labels`` are, for reports ("FER-2013 labels", "your
            labels").
    """

    images: np.ndarray
    labels: np.ndarray
    source: str
    rows: np.ndarray | None = None
    targets: np.ndarray | None = None
    labelled_by: str = "FER-2013 labels"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        """Number of faces per class, indexed like :data:`EMOTIONS`."""
        return np.bincount(self.labels, minlength=len(EMOTIONS))


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held-out) with ``fraction`` of each class held out."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held.append(idx[: round(len(idx) * fraction)])
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def held_out_split(faces: FaceSet, fraction: float, seed: int) -> tuple[FaceSet, FaceSet]:
    """``faces`` as (trained on, held out): ``fraction`` of each class held out by ``seed``.

    The one split ``python -m train`` picks its epoch on, and ``python -m train.evaluate
    --held-out`` scores on, so a candidate or teacher is judged on the very faces its run
    never trained on.
    """
    keep, held = stratified_split(faces.labels, fraction, seed)
    return (subset(faces, keep, "(train part)"),
            subset(faces, held, f"(held-out {fraction:.0%})"))


def subset(faces: FaceSet, idx: np.ndarray, name: str) -> FaceSet:
    """The faces at ``idx`` (rows and targets too) as a new set whose source says ``name``."""
    return FaceSet(faces.images[idx], faces.labels[idx], f"{faces.source} {name}",
                   rows=None if faces.rows is None else faces.rows[idx],
                   targets=None if faces.targets is None else faces.targets[idx],
                   labelled_by=faces.labelled_by)
