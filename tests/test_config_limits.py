"""Hostile and mistyped config values: every one a one-line ConfigError at start-up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.config import ConfigError, load
from edge.model import ModelCard, ModelError

FLOAT_KEYS = ("source.fps", "source.stall_timeout_s", "source.reconnect.initial_s",
              "source.reconnect.max_s", "detector.scale_factor", "detector.margin",
              "detector.region_margin", "tracking.iou_threshold", "tracking.smoothing",
              "tracking.summary_every_s", "sinks.mqtt.state_every_s",
              "sinks.mqtt.reconnect.initial_s", "pipeline.stats_every_s",
              "motion.threshold", "motion.max_share")


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_float_must_be_finite(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{key}: must be a finite number"):
        load(None, {key: value})


@pytest.mark.parametrize(("key", "value", "most"), [
    ("sinks.mqtt.keepalive_s", 65_536, "65535"),
    ("sinks.mqtt.max_inflight", 10**30, "1,000,000,000"),
    ("sinks.log.backups", 10**9, "100"),
    ("detector.min_neighbors", 2**31, "1,000,000,000"),
    ("detector.min_neighbors", 101, "100"),
    ("model.threads", 10**30, "1,000,000,000"),
    ("model.threads", 65, "64"),
    ("source.reconnect.initial_s", 1e9, "3600"),
    ("motion.safety_every", 10**6, "10000"),
    ("motion.safety_slices", 17, "16"),
    ("motion.still_check_every", 10**30, "1,000,000,000"),
    ("pipeline.opencv_threads", 65, "64"),
])
def test_integers_and_durations_have_an_upper_bound(key: str, value: float, most: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: must be at most {most}"):
        load(None, {key: value})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("device", "cam\x00era", "device: must not contain control characters"),
    ("sinks.mqtt.topic_prefix", "a\nb", "sinks.mqtt.topic_prefix: must not contain control"),
    ("sinks.log.path", "x\x07.jsonl", "sinks.log.path: must not contain control"),
    ("model.path", "m" * 5000, "model.path: must be at most 1024 characters, got 5000"),
    ("sinks.mqtt.host", " ", "sinks.mqtt.host: must name the broker"),
])
def test_strings_are_checked(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(None, {key: value})


def test_a_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(b"device: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(f)


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load(f)
    assert len(str(info.value)) < 300


def test_an_anchor_bomb_gets_a_short_error_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["xxxxxxxxxx", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxxxxxxx"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{prev}, {prev}, {prev}, {prev}, {prev}, {prev}, {prev}]")
    lines.append("device: *a8")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\n")
    started = time.process_time()
    with pytest.raises(ConfigError) as info:
        load(f)
    assert time.process_time() - started < 5.0, "the message must not format the whole value"
    assert len(str(info.value)) < 200


def test_an_empty_section_is_an_empty_mapping(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("source:\ndetector:\n")
    cfg = load(f, {"source.uri": "clip.mp4"})
    assert cfg.source.uri == "clip.mp4" and cfg.detector.full_every == 5


@pytest.mark.parametrize(("card", "message"), [
    ({"id": "m", "labels": ["a", "b"], "preprocessing": None}, "'preprocessing' must be an"),
    ({"id": "m", "labels": ["a", "b"], "preprocessing": [1]}, "'preprocessing' must be an"),
    ({"id": "m", "labels": ["a"], "preprocessing": {"size": 48}}, "input size 48 is not"),
    ({"id": "m", "labels": "abcdefg"}, "'labels' must be a list of class names"),
    ({"id": "m", "labels": ["a", "a"]}, "'labels' names a class twice"),
    ({"labels": ["a"]}, "invalid field 'id'"),
    ([1, 2], "a model card is a JSON object"),
])
def test_bad_model_cards_say_what_is_wrong(card: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ModelCard.from_dict(card, "m.json")


def test_a_non_utf8_card_is_a_card_error(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_bytes(json.dumps({"id": "m", "labels": ["a"]}).encode() + b"\xff")
    with pytest.raises(ModelError, match="not UTF-8 JSON"):
        ModelCard.load(f)
