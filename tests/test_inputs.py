"""The training input pipeline: epochs reshuffle, and a resumed run continues the stream."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from train.inputs import Augment, make_dataset, steps_per_epoch

N, BATCH = 50, 16  # four batches per epoch, the last one short


def _faces() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, 48, 48), np.uint8), np.arange(N) % 7


def _batches(start_epoch: int, count: int) -> list[np.ndarray]:
    images, labels = _faces()
    ds = make_dataset(images, labels, BATCH, training=True, seed=7, start_epoch=start_epoch)
    return [x.numpy() for x, _ in ds.take(count)]


def test_training_stream_repeats_with_a_new_shuffle_each_epoch() -> None:
    steps = steps_per_epoch(N, BATCH)
    assert steps == 4
    stream = _batches(0, 3 * steps)
    assert [len(b) for b in stream] == [16, 16, 16, 2] * 3
    assert not np.array_equal(stream[0], stream[steps])


def test_resumed_stream_equals_the_uninterrupted_one() -> None:
    steps = steps_per_epoch(N, BATCH)
    uninterrupted = _batches(0, 3 * steps)
    resumed = _batches(2, steps)
    for a, b in zip(uninterrupted[2 * steps:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluation_pass_is_one_ordered_epoch_without_augmentation() -> None:
    images, labels = _faces()
    ds = make_dataset(images, labels, BATCH, training=False, seed=7, augment=Augment())
    xs = np.concatenate([x.numpy() for x, _ in ds])
    np.testing.assert_array_equal(xs[..., 0], images.astype(np.float32))


def test_given_targets_ride_with_their_faces_through_shuffle_and_augmentation() -> None:
    images, labels = _faces()
    # A target row that names its face's label, so pairing can be checked after shuffling.
    targets = np.eye(7, dtype=np.float32)[labels] * 0.5 + 0.5 / 7
    plain = make_dataset(images, labels, BATCH, training=True, seed=7, label_smoothing=0.5)
    given = make_dataset(images, labels, BATCH, training=True, seed=7, targets=targets)
    for (xa, ya), (xb, yb) in zip(plain.take(8), given.take(8), strict=True):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_allclose(ya.numpy(), yb.numpy(), atol=1e-6)


def test_targets_of_the_wrong_shape_are_refused() -> None:
    images, labels = _faces()
    with pytest.raises(ValueError, match="targets: expected shape"):
        make_dataset(images, labels, BATCH, training=True, seed=7,
                     targets=np.zeros((N, 6), np.float32))


def _augmented(images: np.ndarray, augment: Augment) -> np.ndarray:
    labels = np.zeros(len(images), np.int64)
    ds = make_dataset(images, labels, len(images), training=True, seed=3, augment=augment)
    return next(iter(ds))[0].numpy()[..., 0]


def test_erasing_replaces_one_rectangle_per_face_and_leaves_the_rest() -> None:
    # A constant face makes every erased pixel visible (noise is never exactly 128.0).
    faces = np.full((64, 48, 48), 128, np.uint8)
    out = _augmented(faces, Augment(**{**vars(Augment.none()), "erase": 1.0}))
    for face in out:
        changed = face != 128.0
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        box = changed[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.all(), "the erased pixels form one filled rectangle"
        assert 0.015 <= box.size / face.size <= 0.25
        assert face[~changed].max() == 128.0


def test_erasing_hits_about_its_share_of_faces_and_is_off_by_default() -> None:
    faces = np.full((400, 48, 48), 128, np.uint8)
    plain = {**vars(Augment.none())}
    erased = (_augmented(faces, Augment(**{**plain, "erase": 0.5})) != 128.0).any(axis=(1, 2))
    assert 0.4 < erased.mean() < 0.6
    assert Augment().erase == 0.0
    assert (_augmented(faces, Augment(**plain)) == 128.0).all()


def test_erase_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="erase"):
        Augment(erase=1.5)
