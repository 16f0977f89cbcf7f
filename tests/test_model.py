"""The device classifier: numerics against a direct interpreter call, batching, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.model import EmotionClassifier, ModelCard, ModelError, load_runtime
from tests.conftest import model_mode


def direct(model: Path, face: np.ndarray) -> np.ndarray:
    """One face through a bare LiteRT interpreter, quantized by hand from the tensor."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = face.reshape(1, 48, 48, 1).astype(np.float32)
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"]).astype(np.float32)
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    return y[0]


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    from tests.fixtures import make_faces

    return make_faces(1, seed=5)[0]  # 7 faces


@pytest.mark.parametrize("mode", ["int8", "float32", "float16", "dynamic"])
def test_matches_a_direct_interpreter_call(device_models: Path, faces: np.ndarray,
                                           mode: str) -> None:
    model = model_mode(device_models, mode)
    clf = EmotionClassifier(model)
    got = clf.classify(faces)
    assert got.shape == (7, 7) and got.dtype == np.float32
    for i, face in enumerate(faces):
        np.testing.assert_allclose(got[i], direct(model, face), atol=1e-6)


@pytest.mark.parametrize("mode", ["int8", "float32"])
def test_batch_equals_single_calls(device_models: Path, faces: np.ndarray, mode: str) -> None:
    clf = EmotionClassifier(model_mode(device_models, mode))
    batch = clf.classify(faces)
    singles = np.stack([clf.classify(f[None])[0] for f in faces])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    again = clf.classify(faces[:3])  # a resize back to a smaller batch
    np.testing.assert_allclose(again, batch[:3], atol=1e-6)
    assert clf.classify(faces[:0]).shape == (0, 7)


def test_probabilities_named_by_the_card(device_models: Path, faces: np.ndarray) -> None:
    clf = EmotionClassifier(device_models / "emotion_int8.tflite")
    probs = clf.probabilities(faces[:2])
    assert list(probs[0]) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert sum(probs[0].values()) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="uint8"):
        clf.classify(faces.astype(np.float32))


def test_runtime_order_prefers_litert() -> None:
    rt = load_runtime()
    assert rt.name == "litert" and rt.version != "unknown"
    with pytest.raises(ModelError, match="unknown runtime"):
        load_runtime("onnx")


def test_missing_corrupt_and_mismatched_files(device_models: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        EmotionClassifier(tmp_path / "none.tflite")
    model = tmp_path / "m.tflite"
    shutil.copy(device_models / "emotion_int8.tflite", model)
    with pytest.raises(ModelError, match="model card not found"):
        EmotionClassifier(model)
    card = json.loads((device_models / "emotion_int8.json").read_text())
    card["sha256"] = "0" * 64
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256 differs"):
        EmotionClassifier(model)
    card.pop("sha256")
    card["labels"] = ["a", "b"]
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="2 labels"):
        EmotionClassifier(model)
    corrupt = tmp_path / "c.tflite"
    corrupt.write_bytes(b"TFL3" + b"\x00" * 100)
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        EmotionClassifier(corrupt, ModelCard.from_dict({"id": "c", "labels": ["x"]}))
    with pytest.raises(ModelError, match="missing or invalid field"):
        ModelCard.from_dict({"labels": ["x"]})
