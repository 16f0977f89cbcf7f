"""The configuration's reference (config.yaml, docs/configuration.md) is written from the
config classes, and says what they do: every key, its default, its description."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from edge.config import SourceConfig
from edge.config.reference import COMMENTED, EXAMPLE, field_docs, keys, main
from tests.fixtures import ROOT


def test_config_yaml_and_the_reference_page_match_the_classes() -> None:
    assert main(["--check"]) == 0  # else: python -m edge.config.reference


def test_config_yaml_holds_every_default_but_the_example_source() -> None:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for key in keys():
        if key.section is not None or key.path in COMMENTED:
            continue
        node = data
        for part in key.path.split("."):
            node = node[part]
        expected = EXAMPLE[key.path][0] if key.path in EXAMPLE else key.default
        assert node == expected, key.path


def test_a_field_without_a_description_is_named() -> None:
    @dataclasses.dataclass
    class Partial:
        """A section.

        Attributes:
            documented: says what it does,
                over two lines.
        """

        documented: int = 1
        forgotten: int = 2

    with pytest.raises(ValueError, match="forgotten"):
        field_docs(Partial)
    assert field_docs(SourceConfig)["fps"] == "Frame rate asked of a camera."
