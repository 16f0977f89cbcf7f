"""What a pipeline is told (:class:`PipelineSettings`, built from the config by
:mod:`edge.assemble`) and what it needs from a classifier (:class:`Classifier`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.config import QualityConfig


@dataclass(frozen=True)
class PipelineSettings:
    """How a pipeline runs (built from the config by :mod:`edge.assemble`).

    Attributes:
        margin: crop margin around face boxes, in face widths.
        queue_size: frame queue length.
        max_frames: stop after this many frames (0: no limit).
        drop_oldest: drop the oldest frame when behind; ``None``: when the source is live.
        rate: pace reading at this many frames per second (replaying a file as a camera).
        reconnect: (initial, max) seconds between attempts to reopen a failed live source.
        quality: which crops are worth classifying (:mod:`edge.vision.quality`).
        status_every_s: seconds between the sinks' ``status`` calls (MQTT ``state``),
            made by the sink thread from :meth:`edge.stats.Stats.status`; 0: none.
    """

    margin: float = 0.15
    queue_size: int = 4
    max_frames: int = 0
    drop_oldest: bool | None = None
    rate: float | None = None
    reconnect: tuple[float, float] = (1.0, 30.0)
    quality: QualityConfig = field(default_factory=QualityConfig)
    status_every_s: float = 0.0


class Classifier(Protocol):
    """What the pipeline needs from a classifier (``edge.model.EmotionClassifier``)."""

    labels: tuple[str, ...]

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """``(N, len(labels))`` probabilities for ``(N, 48, 48)`` uint8 faces."""
