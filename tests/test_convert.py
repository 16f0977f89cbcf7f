"""python -m convert.quantize: every mode, the card, the parity gate, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from convert.quantize import main as quantize
from edge.model import EmotionClassifier
from edge.preprocessing import EMOTIONS
from train.data import load
from train.evaluate import evaluate

MODES = ("int8", "float16", "dynamic", "float32")


@pytest.mark.parametrize("mode", MODES)
def test_card_fields_and_figures(converted: Path, trained_run: Path, fer_csv: Path,
                                 mode: str) -> None:
    model = converted / f"emotion_{mode}.tflite"
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["labels"] == list(EMOTIONS)
    assert card["mode"] == mode
    assert card["preprocessing"]["size"] == [48, 48]
    assert card["size_bytes"] == model.stat().st_size
    assert card["sha256"] and card["source"]["sha256"]
    assert card["command"].startswith("python -m convert.quantize")
    assert "numpy" in card["versions"]
    parity = card["parity"]
    assert parity["passed"] is True and parity["split"] == "PublicTest"
    assert parity["reference"] == {"keras": str(trained_run / "best.keras"),
                                   "sha256": card["source"]["sha256"]}
    assert 0.8 <= parity["top1_agreement"] <= 1.0
    assert 0 <= parity["mean_abs_prob_diff"] <= parity["max_abs_prob_diff"] <= 1
    assert card["latency_ms_per_face"]["median"] > 0
    # The card's figures agree with a fresh evaluation through the device classifier...
    test = load(fer_csv, ("PublicTest",))["PublicTest"]
    fresh = evaluate(model, test)
    assert fresh["accuracy"] == parity["tflite_accuracy"] == card["evaluation"]["accuracy"]
    # ...and the Keras side with a fresh evaluation of the source model.
    assert evaluate(trained_run / "best.keras", test)["accuracy"] == parity["keras_accuracy"]
    # The card carries the training run's record, as written next to the model.
    run = json.loads((trained_run / "metrics.json").read_text())
    assert card["training"]["command"] == run["command"]
    assert card["training"]["stream_seed"] == run["stream_seed"]  # re-runs the same draws
    assert card["training"]["selection"] == run["selection"]  # which epoch the weights are
    assert card["training"]["test"]["accuracy"] == run["test"]["accuracy"]


def test_card_keeps_where_the_weights_and_soft_labels_came_from(tmp_path: Path) -> None:
    from convert.quantize import _training_summary

    parents = {"init_from": {"model": "runs/a/best.keras", "sha256": "1" * 64},
               "teachers": {"models": [{"model": "runs/b/best.keras"}], "weight": 0.5}}
    (tmp_path / "metrics.json").write_text(json.dumps({"arch": "edge", **parents}))
    summary = _training_summary(tmp_path / "metrics.json")
    assert summary == {"arch": "edge", **parents}


def test_int8_tensors_are_integer(converted: Path) -> None:
    card = json.loads((converted / "emotion_int8.json").read_text())
    assert card["input"]["dtype"] == "int8" and card["output"]["dtype"] == "int8"
    assert card["input"]["scale"] == pytest.approx(1.0)  # raw pixels: Rescaling is inside
    assert card["input"]["zero_point"] == -128
    float_card = json.loads((converted / "emotion_float32.json").read_text())
    assert float_card["input"]["dtype"] == "float32" and float_card["input"]["scale"] is None


def test_uint8_io(trained_run: Path, fer_csv: Path, tmp_path: Path) -> None:
    code = quantize(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                     "--out", str(tmp_path), "--io-type", "uint8", "--calibration", "30",
                     "--min-agreement", "0.8"])
    assert code == 0
    card = json.loads((tmp_path / "emotion_int8.json").read_text())
    assert card["input"]["dtype"] == "uint8" and card["output"]["dtype"] == "uint8"
    assert card["input"]["zero_point"] == 0
    clf = EmotionClassifier(tmp_path / "emotion_int8.tflite")
    probs = clf.classify(np.zeros((2, 48, 48), np.uint8))
    assert probs.shape == (2, 7)


def test_parity_gate_fails_with_impossible_threshold(
        trained_run: Path, fer_csv: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    code = quantize(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                     "--out", str(tmp_path), "--calibration", "30", "--min-agreement", "1.01"])
    assert code == 1
    assert "parity check failed" in caplog.text
    assert "top-1 agreement" in caplog.text and "1.0100" in caplog.text
    assert json.loads((tmp_path / "emotion_int8.json").read_text())["parity"]["passed"] is False


def test_missing_and_non_keras_model(tmp_path: Path, fer_csv: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    assert quantize(["--model", str(tmp_path / "nope.keras"), "--data", str(fer_csv),
                     "--out", str(tmp_path)]) == 2
    assert "no such model file" in caplog.text
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    assert quantize(["--model", str(txt), "--data", str(fer_csv), "--out", str(tmp_path)]) == 2
    assert "not a Keras model file" in caplog.text
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"\x00garbage")
    assert quantize(["--model", str(fake), "--data", str(fer_csv), "--out", str(tmp_path)]) == 2
    assert "cannot be loaded as a Keras model" in caplog.text


def test_unwritable_output(trained_run: Path, fer_csv: Path, tmp_path: Path,
                           caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert quantize(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                     "--out", str(blocker / "sub")]) == 2
    assert "cannot be written" in caplog.text


def test_data_shape_mismatch(tmp_path: Path, fer_csv: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    import keras

    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "small.keras"
    model.save(path)
    assert quantize(["--model", str(path), "--data", str(fer_csv), "--out", str(tmp_path)]) == 2
    assert "model takes (32, 32, 1)" in caplog.text


def test_flip_average_folds_the_mirror_into_the_graph(trained_run: Path, fer_csv: Path,
                                                      converted: Path, tmp_path: Path) -> None:
    code = quantize(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                     "--out", str(tmp_path), "--mode", "float32", "--flip-average"])
    assert code == 0
    card = json.loads((tmp_path / "emotion_float32.json").read_text())
    assert card["source"]["flip_average"] is True
    flip = EmotionClassifier(tmp_path / "emotion_float32.tflite")
    plain = EmotionClassifier(converted / "emotion_float32.tflite")
    faces = load(fer_csv, ("PublicTest",))["PublicTest"].images[:5]
    expected = (plain.classify(faces) + plain.classify(np.ascontiguousarray(faces[:, :, ::-1])))
    np.testing.assert_allclose(flip.classify(faces), expected / 2, atol=1e-5)
