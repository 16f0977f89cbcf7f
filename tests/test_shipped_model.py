"""The models that ship in models/: cards with both scores, size, float source, a smile."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import pytest

from edge.config import DetectorConfig, load
from edge.model import EmotionClassifier
from edge.predict import predict_image
from edge.preprocessing import EMOTIONS
from edge.vision.faces import FaceDetector

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("emotion_ferplus_int8", "emotion_int8")


@pytest.mark.parametrize("name", SHIPPED)
def test_card_matches_the_model_and_records_its_figures(name: str) -> None:
    card = json.loads((MODELS / f"{name}.json").read_text())
    model = MODELS / f"{name}.tflite"
    assert card["labels"] == list(EMOTIONS)
    assert card["mode"] == "int8" and card["input"]["dtype"] == "int8"
    assert card["size_bytes"] == model.stat().st_size < 1_000_000
    assert card["parity"]["passed"] is True and card["parity"]["split"] == "PublicTest"
    assert card["parity"]["top1_agreement"] >= 0.98
    assert card["command"].startswith("python -m convert.quantize")
    # Both scores, on the same split: FER-2013's labels and the FER+ majority.
    assert card["evaluation"]["split"] == card["evaluation_ferplus"]["split"] == "PublicTest"
    assert card["evaluation"]["count"] == 3589 and card["evaluation_ferplus"]["count"] == 3529
    EmotionClassifier(model)  # the sha256 in the card matches the file


@pytest.mark.parametrize(("name", "source"), [("emotion_ferplus_int8", "emotion_ferplus.keras"),
                                              ("emotion_int8", "emotion_int8.keras")])
def test_the_float_source_ships_next_to_the_model(name: str, source: str) -> None:
    card = json.loads((MODELS / f"{name}.json").read_text())
    keras_file = MODELS / source
    assert keras_file.stat().st_size <= 4_000_000
    recorded = card.get("float_source") or card["source"]
    assert Path(recorded["keras"]).name == source
    assert recorded["sha256"] == hashlib.sha256(keras_file.read_bytes()).hexdigest()


def test_the_default_model_agrees_with_people_at_the_promised_rate() -> None:
    cfg_model = load(MODELS.parent / "config.yaml").model.path
    card = json.loads(Path(cfg_model).with_suffix(".json").read_text())
    assert Path(cfg_model).name == "emotion_ferplus_int8.tflite"
    assert card["evaluation_ferplus"]["accuracy"] >= 0.83


@pytest.mark.parametrize("name", SHIPPED)
def test_a_smiling_face_is_happy(name: str) -> None:
    image = cv2.imread(str(MODELS / "sample" / "astronaut.jpg"))
    clf = EmotionClassifier(MODELS / f"{name}.tflite")
    faces = predict_image(image, FaceDetector(DetectorConfig()), clf, DetectorConfig().margin)
    assert len(faces) == 1
    assert faces[0]["emotion"] == "happy" and faces[0]["confidence"] > 0.5
