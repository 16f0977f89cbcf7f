"""The ``tf.data`` input pipeline: shuffle, face-suited augmentation, batch, prefetch."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edge.preprocessing import EMOTIONS, FACE_SIZE
from train.config import Augment
from train.data import smoothed_onehot


def _targets(labels: np.ndarray, targets: np.ndarray | None,
             label_smoothing: float) -> np.ndarray:
    """``targets`` checked against the labels, or the smoothed one-hot labels."""
    if targets is None:
        return smoothed_onehot(labels, label_smoothing)
    if targets.shape != (len(labels), len(EMOTIONS)):
        raise ValueError(f"targets: expected shape {(len(labels), len(EMOTIONS))}, "
                         f"got {targets.shape}")
    return targets


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    augment: Augment | None = None,
    label_smoothing: float = 0.0,
    start_epoch: int = 0,
    targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Build a batched dataset of ``(float32 pixels 0..255 [B,48,48,1], [B,7] targets)``.

    A training dataset repeats forever, reshuffled every epoch (``steps_per_epoch`` batches
    each, see :func:`steps_per_epoch`); an evaluation one is a single ordered pass.

    Args:
        images: ``(N, 48, 48)`` uint8 faces.
        labels: ``(N,)`` int label ids.
        batch_size: faces per batch.
        training: shuffle each epoch and augment; otherwise keep order, no augmentation.
        seed: seed for shuffling and augmentation.
        augment: perturbations to apply when training (defaults to :class:`Augment`).
        label_smoothing: mass moved from the true class to the others, spread evenly.
        start_epoch: training only: begin where an uninterrupted run would be at this
            epoch, so a resumed run sees the same shuffles and augmentations rather than
            replaying the first epochs' ones.
        targets: ``(N, 7)`` distributions to train on instead of the smoothed one-hot
            labels (for example :func:`train.distill.blend_targets`); the faces are
            shuffled and augmented exactly as without them.
    """
    targets = _targets(labels, targets, label_smoothing)
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], targets.astype(np.float32)))
    if training:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    # Batching before repeating keeps every batch inside one epoch.
    ds = ds.batch(batch_size, drop_remainder=False)
    if training:
        ds = ds.repeat()
    aug = (augment or Augment()) if training else Augment.none()
    rng = tf.random.Generator.from_seed(seed)

    def to_tensors(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, tf.float32)
        if training:
            x = _augment_batch(x, aug, rng)
        return x, y

    # One deterministic map call at a time keeps the shared generator's draws reproducible.
    ds = ds.map(to_tensors, num_parallel_calls=1, deterministic=True)
    if training and start_epoch:
        # Skipping after the map also advances the augmentation generator; it costs only
        # the augmentation work (a few ms per batch), not any training.
        ds = ds.skip(start_epoch * steps_per_epoch(len(labels), batch_size))
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n_faces: int, batch_size: int) -> int:
    """Batches in one pass over ``n_faces`` (the last one may be short)."""
    return math.ceil(n_faces / batch_size)


def _augment_batch(x: tf.Tensor, aug: Augment, rng: tf.random.Generator) -> tf.Tensor:
    b = tf.shape(x)[0]
    if aug.flip:
        flip = rng.uniform([b, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if aug.rotate_deg or aug.shift or aug.zoom:
        x = _affine(x, aug, rng, b)
    if aug.brightness or aug.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        gain = rng.uniform([b, 1, 1, 1], 1.0 - aug.contrast, 1.0 + aug.contrast)
        offset = rng.uniform([b, 1, 1, 1], -aug.brightness, aug.brightness) * 255.0
        x = (x - mean) * gain + mean + offset
    if aug.gain != (1.0, 1.0):
        x = x * rng.uniform([b, 1, 1, 1], aug.gain[0], aug.gain[1])
    x = tf.clip_by_value(x, 0.0, 255.0)
    if aug.erase:
        # Drawn only when enabled, so runs without it keep their recorded random stream.
        x = _erase(x, aug.erase, rng, b)
    return x


# Area share and aspect ratio of an erased rectangle (Zhong et al.'s random erasing, with a
# smaller largest area: a 48x48 face has little to spare).
_ERASE_AREA = (0.02, 0.2)
_ERASE_LOG_ASPECT = (math.log(0.3), math.log(1 / 0.3))


def _erase(x: tf.Tensor, p: float, rng: tf.random.Generator, b: tf.Tensor) -> tf.Tensor:
    area = rng.uniform([b], *_ERASE_AREA) * FACE_SIZE * FACE_SIZE
    aspect = tf.exp(rng.uniform([b], *_ERASE_LOG_ASPECT))
    h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, FACE_SIZE)
    w = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, FACE_SIZE)
    top = tf.floor(rng.uniform([b]) * (FACE_SIZE - h + 1))
    left = tf.floor(rng.uniform([b]) * (FACE_SIZE - w + 1))
    on = rng.uniform([b]) < p
    idx = tf.range(FACE_SIZE, dtype=tf.float32)
    rows = (idx[None, :] >= top[:, None]) & (idx[None, :] < (top + h)[:, None])
    cols = (idx[None, :] >= left[:, None]) & (idx[None, :] < (left + w)[:, None])
    mask = rows[:, :, None, None] & cols[:, None, :, None] & on[:, None, None, None]
    noise = rng.uniform(tf.shape(x), 0.0, 255.0)
    return tf.where(mask, noise, x)


def _affine(x: tf.Tensor, aug: Augment, rng: tf.random.Generator, b: tf.Tensor) -> tf.Tensor:
    # The transform maps output coordinates to input ones: p_in = A (p_out - c) + c + t,
    # with A = R(theta) / s, c the image centre and t the shift.
    theta = rng.uniform([b], -1.0, 1.0) * (aug.rotate_deg * math.pi / 180.0)
    scale = rng.uniform([b], 1.0 - aug.zoom, 1.0 + aug.zoom)
    tx = rng.uniform([b], -aug.shift, aug.shift) * FACE_SIZE
    ty = rng.uniform([b], -aug.shift, aug.shift) * FACE_SIZE
    c = (FACE_SIZE - 1) / 2.0
    cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.constant([FACE_SIZE, FACE_SIZE], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
