"""Model presets: stated parameter counts, MAC counts, input/output contract."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from train import presets


def test_seed_preset_matches_reference_notebooks() -> None:
    model = presets.build("seed")
    assert model.count_params() == 4_478_727
    assert presets.count_macs(model) == 290_475_520


def test_edge_preset_is_compact() -> None:
    model = presets.build("edge")
    assert 300_000 < model.count_params() < 1_000_000
    assert presets.count_macs(model) < 100_000_000
    assert any("separable" in layer.name for layer in model.layers)


def test_edge_plus_spends_the_budget_on_its_top_stage() -> None:
    edge, plus = presets.build("edge"), presets.build("edge-plus")
    assert plus.count_params() == 880_167  # int8 about 0.9 MB: under the 1 MB device budget
    assert presets.count_macs(plus) == 79_479_680
    assert not any("separable" in layer.name for layer in plus.layers)
    # Same layers up to the 6x6 stage: only the top convolutions differ.
    assert [w.shape for w in plus.get_weights()[:25]] == [w.shape for w in edge.get_weights()[:25]]


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_takes_raw_pixels_and_gives_7_probs(name: str) -> None:
    import numpy as np

    model = presets.build(name)
    assert tuple(model.inputs[0].shape[1:]) == (48, 48, 1)
    probs = model.predict(np.full((2, 48, 48, 1), 128.0, np.float32), verbose=0)
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.layers[1].name == "scale"  # Rescaling inside: the device feeds raw pixels


def test_dense_mac_count() -> None:
    model = presets.build("mlp")
    assert presets.count_macs(model) == 48 * 48 * 512 + 512 * 256 + 256 * 7


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset 'vgg'"):
        presets.build("vgg")


def test_the_cli_lists_every_preset() -> None:
    from typing import get_args

    from train.config import Arch

    assert set(get_args(Arch)) == set(presets.PRESETS)
