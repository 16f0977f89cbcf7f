"""The scores a model card carries: FER-2013 labels, and the FER+ majority given the votes.

``convert.quantize`` writes them when it makes a model and ``train.evaluate --write-card``
re-measures them for a model that already exists; both go through :func:`card_scores`, so
a card reads the same whichever wrote it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.model_files import sha256_of
from train.ferplus import Votes, majority_metrics
from train.metrics import classification_metrics


def card_scores(usage: str, labels: np.ndarray, predictions: np.ndarray,
                votes: Votes | None = None, votes_path: str | Path | None = None) -> dict:
    """``evaluation`` (and ``evaluation_ferplus`` with the votes) entries of a model card.

    Args:
        usage: the split scored (``PublicTest``).
        labels: its FER-2013 label ids.
        predictions: the model's top class per face.
        votes: the split's FER+ votes, to score agreement with the FER+ majority too.
        votes_path: the votes file, whose sha256 the card records.
    """
    scores = {"evaluation": {"split": usage, **classification_metrics(labels, predictions)}}
    if votes is not None:
        scores["evaluation_ferplus"] = {
            "split": usage,
            "votes_sha256": sha256_of(votes_path) if votes_path else None,
            **majority_metrics(votes, predictions)}
    return scores
