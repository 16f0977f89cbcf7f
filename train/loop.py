"""The training loop every ``--distribute`` mode runs: one machine, its GPUs, or several machines.

Keras 3's ``fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (TensorFlow
issue #72388), so training runs TensorFlow's documented custom loop instead, the same for
every strategy (the default one included), so no second loop can drift from this one:

- the dataset is distributed by the strategy: each step's global batch is split over the
  replicas, on every worker;
- each replica's loss is the sum of its faces' (class-weighted) cross-entropies divided
  by the *global* batch, so the all-reduced gradient is the global batch's mean;
- the held-out faces are scored the same way and summed over the replicas, so every
  worker sees the very same ``val_loss`` and stops (early stopping) on the same epoch;
- the Keras callbacks (checkpoints, early stopping, the plateau schedule, the CSV log,
  the progress line) are driven as ``fit`` drives them; a worker other than the chief
  gives them a scratch folder, so only the chief writes the run folder.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)


def fit(model: keras.Model, strategy: Any | None, train_ds: tf.data.Dataset,
        val_ds: tf.data.Dataset | None, *, epochs: int, initial_epoch: int,
        steps: int, global_batch: int, class_weight: dict[int, float] | None,
        callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """Train ``model`` (compiled: its optimizer is used) from ``initial_epoch`` to ``epochs``.

    Args:
        model: built (under ``strategy.scope()`` when there is a strategy) and compiled.
        strategy: a ``tf.distribute`` strategy, or None for the default device.
        train_ds: the training batches, ``global_batch`` faces each, repeating forever.
        val_ds: one ordered pass over the held-out faces, or None.
        epochs: the epoch to stop at (exclusive, as ``fit``'s ``epochs``).
        initial_epoch: the epoch to start at (a resumed run's).
        steps: batches per epoch.
        global_batch: faces per step over all replicas (the loss's divisor).
        class_weight: a weight per class id, or None.
        callbacks: Keras callbacks, called as ``fit`` calls them.
    """
    strategy = strategy or tf.distribute.get_strategy()
    weights = np.ones(model.output_shape[-1], np.float32)
    for k, w in (class_weight or {}).items():
        weights[k] = w
    if not model.optimizer.built:
        # Its slots made here, under the strategy, not on the compiled step's first call
        # (a tf.function that makes variables is traced into a conditional that a
        # distributed step cannot run).
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    step_fn, score_fn = _steps(model, strategy, weights, global_batch)
    batches = iter(strategy.experimental_distribute_dataset(_by_batch(train_ds)))
    val = (strategy.experimental_distribute_dataset(_by_batch(val_ds))
           if val_ds is not None else None)
    hooks = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        # Summed as tensors and read once per epoch: reading each step would wait for it.
        totals = [tf.constant(0.0)] * 3  # loss, faces right, faces
        for step in range(steps):
            hooks.on_train_batch_begin(step)
            totals = [a + b for a, b in zip(totals, step_fn(next(batches)), strict=True)]
            hooks.on_train_batch_end(step)
        loss, right, faces = (float(t) for t in totals)
        logs = {"loss": loss / max(faces, 1.0), "accuracy": right / max(faces, 1.0)}
        if val is not None:
            logs.update(_score(score_fn, val))
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(
            model.optimizer.learning_rate))
        if not all(math.isfinite(v) for v in logs.values()):
            raise FloatingPointError(f"epoch {epoch + 1}: the loss is not finite ({logs})")
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()


def _by_batch(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Across workers, each takes its share of every global batch (the faces are in memory,
    not in files to hand out); other strategies ignore this."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return ds.with_options(options)


def _steps(model: keras.Model, strategy: Any, class_weights: np.ndarray,
           global_batch: int) -> tuple[Any, Any]:
    """The compiled training step and the held-out scoring step."""
    weights = tf.constant(class_weights)

    def per_face(y: tf.Tensor, p: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        p = tf.cast(p, tf.float32)  # mixed precision: the loss is summed in float32
        loss = keras.losses.categorical_crossentropy(y, p)
        right = tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(p, -1)), tf.float32)
        return loss, right

    def train_replica(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape() as tape:
            loss, right = per_face(y, model(x, training=True))
            summed_loss = tf.reduce_sum(loss * tf.gather(weights, tf.argmax(y, -1)))
            penalty = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            # Divided by the global batch (and the penalty, counted once per step, by the
            # replicas): the gradients the optimizer sums over the replicas are the mean's.
            scaled = summed_loss / global_batch + penalty / strategy.num_replicas_in_sync
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables,
                                            strict=True))
        faces = tf.cast(tf.shape(y)[0], tf.float32)
        return summed_loss + penalty * faces, tf.reduce_sum(right), faces

    def score_replica(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        loss, right = per_face(y, model(x, training=False))
        return (tf.reduce_sum(loss), tf.reduce_sum(right),
                tf.cast(tf.shape(y)[0], tf.float32))

    def summed(values: Any) -> Any:
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in values]

    @tf.function(reduce_retracing=True)
    def train_step(batch: Any) -> Any:
        return summed(strategy.run(train_replica, args=batch))

    @tf.function(reduce_retracing=True)
    def score_step(batch: Any) -> Any:
        return summed(strategy.run(score_replica, args=batch))

    return train_step, score_step


def _score(score_fn: Any, val: Any) -> dict[str, float]:
    loss = right = count = 0.0
    for batch in val:
        a, b, n = score_fn(batch)
        loss, right, count = loss + float(a), right + float(b), count + float(n)
    return {"val_loss": loss / max(count, 1.0), "val_accuracy": right / max(count, 1.0)}
