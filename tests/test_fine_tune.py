"""Your own faces: photos -> prepared faces -> fine-tune the shipped model -> quantize -> the
device labels with the new model. The "photos" are made from the bundled astronaut."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from convert.quantize import main as quantize_main
from tests.fixtures import ROOT, write_own_photos
from train.__main__ import main as train_main
from train.evaluate import main as evaluate_main
from train.prepare import main as prepare_main

PARENT = ROOT / "models/emotion_int8.keras"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_own_photos(tmp_path_factory.mktemp("photos") / "my_faces",
                            ROOT / "models/sample/astronaut.jpg")


def test_prepare_crops_one_face_per_photo_and_reports_the_rest(
        photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "faces"
    with caplog.at_level("INFO"):
        assert prepare_main([str(photos), str(out)]) == 0
    written = sorted((out / "surprise").glob("*.png"))
    assert len(written) == 16
    import cv2

    assert cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED).shape == (48, 48)
    assert "no face found: empty_room.jpg" in caplog.text
    assert "several faces (which one is labelled?): two_people.jpg" in caplog.text
    assert prepare_main([str(tmp_path / "none"), str(out)]) == 2


def _accuracy(model: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> float:
    capsys.readouterr()
    assert evaluate_main(["--model", str(model), "--data", str(data), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["accuracy"]


def test_fine_tuning_the_shipped_model_on_my_faces_beats_its_parent(
        photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code = train_main(["--init-from", str(PARENT), "--data", str(photos), "--epochs", "6",
                       "--lr", "3e-4", "--lr-schedule", "cosine", "--freeze", "2",
                       "--batch-size", "8", "--val-fraction", "0.2", "--out", str(run)])
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["init_from"]["model"] == str(PARENT)
    parent = _accuracy(PARENT, photos, capsys)  # the same held-out faces (seeded split)
    assert metrics["test"]["accuracy"] > parent
    models = tmp_path / "models"
    assert quantize_main(["--model", str(run / "best.keras"), "--data", str(photos),
                          "--out", str(models), "--name", "my_faces",
                          "--min-agreement", "0.6"]) == 0
    card = json.loads((models / "my_faces_int8.json").read_text())
    assert card["training"]["init_from"]["model"] == str(PARENT)  # the card names the parent
    result = subprocess.run(
        [sys.executable, "-m", "edge.predict", str(next((photos / "surprise").glob("*.jpg"))),
         "--model", str(models / "my_faces_int8.tflite"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == card["id"]
