"""Training on FER+ votes and scoring against the FER+ majority: train, evaluate, convert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from convert.quantize import main as quantize_main
from train.__main__ import main as train_main
from train.evaluate import main as evaluate_main

_TINY = ["--epochs", "2", "--batch-size", "16", "--val-fraction", "0.2", "--arch", "mlp"]


@pytest.mark.parametrize("labels", ["ferplus", "mixed"])
def test_a_run_on_votes_records_both_scores(labels: str, fer_csv: Path, ferplus_votes: Path,
                                            tmp_path: Path) -> None:
    out = tmp_path / labels
    code = train_main(["--data", str(fer_csv), "--ferplus", str(ferplus_votes), "--labels",
                       labels, "--out", str(out), *_TINY])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == labels and m["ferplus"]["votes"] == str(ferplus_votes)
    assert len(m["ferplus"]["sha256"]) == 64
    assert ("weight" in m["ferplus"]) == (labels == "mixed")
    assert m["test"]["count"] == 42  # FER-2013 labels: every PublicTest face
    # Every PublicTest face has an emotion majority (no untrusted row among rows 84-125).
    assert m["test_ferplus"]["count"] == 42
    assert m["test_ferplus"]["left_out"]["untrusted_row"] == 0
    state = json.loads((out / "state.json").read_text())
    assert state["labels"] == labels
    # A resume under other targets would make half the run another recipe.
    other = "mixed" if labels == "ferplus" else "ferplus"
    assert train_main(["--data", str(fer_csv), "--ferplus", str(ferplus_votes), "--labels",
                       other, "--out", str(out), "--resume", *_TINY]) == 2


def test_votes_labels_need_the_votes_file(fer_csv: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        train_main(["--data", str(fer_csv), "--labels", "ferplus", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "add --ferplus VOTES" in capsys.readouterr().err
    # A votes file that is not there: exit 2 before TensorFlow is imported.
    with pytest.raises(SystemExit) as info:
        train_main(["--data", str(fer_csv), "--labels", "ferplus", "--ferplus",
                    str(tmp_path / "none.csv"), "--out", str(tmp_path / "r"), *_TINY])
    assert info.value.code == 2
    assert "none.csv: no such file" in capsys.readouterr().err


def test_evaluate_scores_the_ferplus_majority(trained_run: Path, fer_csv: Path,
                                              ferplus_votes: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    confusion = tmp_path / "cm.png"
    code = evaluate_main(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                          "--ferplus", str(ferplus_votes), "--json",
                          "--confusion", str(confusion)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 42 and result["ferplus"]["count"] == 42
    assert sum(map(sum, result["ferplus"]["confusion"])) == 42
    assert (tmp_path / "cm_ferplus.png").stat().st_size > 0
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                       "--ferplus", str(tmp_path / "none.csv")])
    assert info.value.code == 2


def test_the_card_records_the_ferplus_score(trained_run: Path, fer_csv: Path,
                                            ferplus_votes: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = quantize_main(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                          "--ferplus", str(ferplus_votes), "--out", str(tmp_path),
                          "--calibration", "40", "--min-agreement", "0.5"])
    assert code == 0
    card = json.loads((tmp_path / "emotion_int8.json").read_text())
    assert card["evaluation_ferplus"]["count"] == 42
    assert card["evaluation_ferplus"]["split"] == "PublicTest"
    capsys.readouterr()
    evaluate_main(["--model", str(tmp_path / "emotion_int8.tflite"), "--data", str(fer_csv),
                   "--ferplus", str(ferplus_votes), "--json"])
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ferplus"]["accuracy"] == card["evaluation_ferplus"]["accuracy"]


def test_evaluate_writes_both_scores_into_an_existing_card(
        device_models: Path, fer_csv: Path, ferplus_votes: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    for suffix in (".tflite", ".json"):
        shutil.copy(device_models / f"emotion_int8{suffix}", tmp_path)
    model = tmp_path / "emotion_int8.tflite"
    before = model.read_bytes()
    capsys.readouterr()
    code = evaluate_main(["--model", str(model), "--data", str(fer_csv), "--ferplus",
                          str(ferplus_votes), "--write-card", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    card = json.loads((tmp_path / "emotion_int8.json").read_text())
    assert card["evaluation"]["accuracy"] == printed["accuracy"]
    assert card["evaluation"]["split"] == "PublicTest" and card["evaluation"]["count"] == 42
    assert card["evaluation_ferplus"]["accuracy"] == printed["ferplus"]["accuracy"]
    assert len(card["evaluation_ferplus"]["votes_sha256"]) == 64
    assert model.read_bytes() == before  # the model itself is not touched
    assert evaluate_main(["--model", str(model), "--model", str(model), "--data",
                          str(fer_csv), "--write-card"]) == 2


@pytest.mark.parametrize("labels", ["ferplus", "fer2013"])
def test_evaluate_held_out_scores_the_faces_the_run_held_out(
        labels: str, fer_csv: Path, ferplus_votes: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    votes = ["--ferplus", str(ferplus_votes)] if labels == "ferplus" else []
    assert train_main(["--data", str(fer_csv), *votes, "--labels", labels, "--out", str(out),
                       "--seed", "7", *_TINY]) == 0
    recorded = json.loads((out / "metrics.json").read_text())["validation"]
    capsys.readouterr()
    assert evaluate_main(["--model", str(out / "best.keras"), "--data", str(fer_csv), *votes,
                          "--held-out", labels, "--seed", "7", "--val-fraction", "0.2",
                          "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    # The very faces the run picked its epoch on, under the labels it was trained on.
    assert scored["count"] == recorded["count"]
    assert scored["confusion"] == recorded["confusion"]
    assert ("ferplus" in scored) == (labels == "ferplus")


def test_evaluate_held_out_says_what_is_missing(fer_csv: Path, trained_run: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    model = str(trained_run / "best.keras")
    assert evaluate_main(["--model", model, "--data", str(fer_csv),
                          "--held-out", "ferplus"]) == 2
    assert "add --ferplus VOTES" in caplog.text
    assert evaluate_main(["--model", model, "--data", str(fer_csv), "--held-out", "fer2013",
                          "--val-fraction", "1.5"]) == 2
    assert "--val-fraction 1.5" in caplog.text
