"""Distillation targets: softening, blending, and the flip-averaged teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from train.distill import (
    TeacherError,
    agreement,
    blend_targets,
    soften,
    teacher_probabilities,
)


def test_soften_is_the_identity_at_temperature_1_and_flattens_above() -> None:
    p = np.array([[0.7, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(soften(p, 1.0), p, atol=1e-9)
    warm = soften(p, 2.0)
    np.testing.assert_allclose(warm.sum(axis=1), 1.0)
    # Square roots renormalised: the order stays, the top class loses mass.
    assert warm[0, 0] < p[0, 0] and warm[0, 2] > p[0, 2]
    assert list(np.argsort(-warm[0])[:3]) == [0, 1, 2]
    np.testing.assert_allclose(warm[0, 1] / warm[0, 2], np.sqrt(2.0))


def test_blend_mixes_the_smoothed_label_with_the_teacher() -> None:
    labels = np.array([3, 0])
    teacher = np.full((2, 7), 1 / 7)
    only_label = blend_targets(labels, teacher, 0.0, label_smoothing=0.07)
    assert only_label[0, 3] == pytest.approx(0.93 + 0.01)
    assert only_label[0, 0] == pytest.approx(0.01)
    np.testing.assert_allclose(blend_targets(labels, teacher, 1.0), teacher, atol=1e-7)
    half = blend_targets(labels, teacher, 0.5)
    assert half[1, 0] == pytest.approx(0.5 + 0.5 / 7)
    np.testing.assert_allclose(half.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        blend_targets(labels, teacher, 1.5)


def test_agreement_counts_faces_whose_label_is_the_teachers_top_class() -> None:
    teacher = np.eye(7)[[0, 1, 2, 3]]
    assert agreement(np.array([0, 1, 5, 6]), teacher) == 0.5


def test_teacher_probabilities_average_each_face_and_its_mirror(trained_run: Path) -> None:
    import keras

    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (5, 48, 48), np.uint8)
    model = keras.models.load_model(trained_run / "best.keras")
    direct = model.predict(faces[..., None].astype(np.float32), verbose=0)
    mirrored = model.predict(faces[:, :, ::-1, None].astype(np.float32), verbose=0)
    got = teacher_probabilities([trained_run / "best.keras"], faces)
    assert got.shape == (5, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, (direct + mirrored) / 2, atol=1e-5)


def test_an_ensemble_teacher_averages_its_members(trained_run: Path, tmp_path: Path) -> None:
    from train.presets import build

    other = build("mlp")
    other.save(tmp_path / "mlp.keras")
    faces = np.random.default_rng(2).integers(0, 256, (4, 48, 48), np.uint8)
    one = teacher_probabilities([trained_run / "best.keras"], faces)
    two = teacher_probabilities([tmp_path / "mlp.keras"], faces)
    both = teacher_probabilities([trained_run / "best.keras", tmp_path / "mlp.keras"], faces)
    assert not np.allclose(one, two, atol=1e-3)
    np.testing.assert_allclose(both, (one + two) / 2, atol=1e-5)


def test_a_missing_or_unfit_teacher_is_refused(tmp_path: Path) -> None:
    import keras

    faces = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(TeacherError, match="no teacher"):
        teacher_probabilities([], faces)
    with pytest.raises(TeacherError, match="no model file"):
        teacher_probabilities([tmp_path / "missing.keras"], faces)
    inputs = keras.Input((48, 48, 1))
    ten_way = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    ten_way.save(tmp_path / "ten.keras")
    with pytest.raises(TeacherError, match="7 emotion probabilities"):
        teacher_probabilities([tmp_path / "ten.keras"], faces)
