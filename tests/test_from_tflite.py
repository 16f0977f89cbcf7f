"""Rebuilding a float Keras model from an int8 TFLite file's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from convert.from_tflite import main as from_tflite


def test_the_rebuilt_model_agrees_with_the_int8_file(converted: Path, fer_csv: Path,
                                                     tmp_path: Path) -> None:
    for suffix in (".tflite", ".json"):
        shutil.copy(converted / f"emotion_int8{suffix}", tmp_path)
    model = tmp_path / "emotion_int8.tflite"
    out = tmp_path / "emotion_int8.keras"
    code = from_tflite(["--model", str(model), "--arch", "edge", "--out", str(out),
                        "--data", str(fer_csv), "--write-card"])
    assert code == 0
    card = json.loads((tmp_path / "emotion_int8.json").read_text())
    source = card["float_source"]
    assert source["keras"] == str(out) and len(source["sha256"]) == 64
    assert source["check"]["count"] == 42
    assert source["check"]["top1_agreement"] >= 0.95
    import keras

    rebuilt = keras.models.load_model(out)
    assert getattr(rebuilt, "optimizer", None) is None  # saved without optimizer state


def test_a_model_of_another_preset_exits_2(converted: Path, fer_csv: Path,
                                           tmp_path: Path) -> None:
    code = from_tflite(["--model", str(converted / "emotion_int8.tflite"), "--arch",
                        "edge-plus", "--out", str(tmp_path / "x.keras"), "--data",
                        str(fer_csv)])
    assert code == 2
