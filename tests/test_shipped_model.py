"""The model that ships in models/: its card, its size, and a smiling face."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from edge.config import DetectorConfig
from edge.faces import FaceDetector
from edge.model import EmotionClassifier
from edge.predict import predict_image
from edge.preprocessing import EMOTIONS

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_card_matches_the_model_and_records_its_figures() -> None:
    card = json.loads((MODELS / "emotion_int8.json").read_text())
    model = MODELS / "emotion_int8.tflite"
    assert card["labels"] == list(EMOTIONS)
    assert card["mode"] == "int8" and card["input"]["dtype"] == "int8"
    assert card["size_bytes"] == model.stat().st_size < 1_000_000
    assert card["parity"]["passed"] is True and card["parity"]["split"] == "PublicTest"
    assert card["parity"]["top1_agreement"] >= 0.98
    assert card["command"].startswith("python -m convert.quantize")
    EmotionClassifier(model)  # the sha256 in the card matches the file


def test_a_smiling_face_is_happy() -> None:
    image = cv2.imread(str(MODELS / "sample" / "astronaut.jpg"))
    clf = EmotionClassifier(MODELS / "emotion_int8.tflite")
    faces = predict_image(image, FaceDetector(DetectorConfig()), clf, DetectorConfig().margin)
    assert len(faces) == 1
    assert faces[0]["emotion"] == "happy" and faces[0]["confidence"] > 0.5
