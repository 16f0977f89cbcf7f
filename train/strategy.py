"""Training on several devices of one machine (``python -m train --distribute mirrored``).

``tf.distribute.MirroredStrategy`` keeps a copy of the model on every GPU (or, with none,
on every logical CPU device) and averages their gradients each step. ``--batch-size`` is
per replica: the global batch is ``batch_size x replicas``, and the learning rate scales
with it (the linear scaling rule), so a recipe keeps its meaning on any number of GPUs.

Across machines (``MultiWorkerMirroredStrategy``) Keras 3's ``fit`` fails with TensorFlow
2.21 (``Attempt to convert a value (PerReplica...)``, TensorFlow issue #72388), so there
is no multi-machine option yet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicas:
    """The devices a run trains on: a strategy (or none) and how many replicas it has."""

    strategy: Any | None
    count: int

    @classmethod
    def for_name(cls, name: str) -> Replicas:
        """``none``: the default device; ``mirrored``: every GPU, else every CPU device."""
        if name == "none":
            return cls(None, 1)
        import tensorflow as tf

        devices = (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("CPU"))
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        log.info("mirrored over %d device(s): %s", strategy.num_replicas_in_sync,
                 ", ".join(d.name for d in devices))
        return cls(strategy, int(strategy.num_replicas_in_sync))

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and load models inside this, so their variables live on every replica."""
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            yield
