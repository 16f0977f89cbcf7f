"""A tiny end-to-end training run: every artefact, metrics consistent with evaluate, resume."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from train.__main__ import main as train_main
from train.evaluate import main as evaluate_main
from train.fit import class_weights, make_optimizer

ARTEFACTS = ("best.keras", "last.keras", "history.csv", "curves.png", "confusion_matrix.png",
             "metrics.json", "state.json")


def test_run_writes_every_artefact(trained_run: Path) -> None:
    for name in ARTEFACTS:
        assert (trained_run / name).stat().st_size > 0, name
    m = json.loads((trained_run / "metrics.json").read_text())
    for key in ("params", "macs", "epochs", "wall_time_s", "seed", "data_sha256", "test",
                "validation"):
        assert key in m, key
    assert m["epochs"] == 3
    assert len(m["data_sha256"]) == 64
    test = m["test"]
    assert set(test["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise",
                                      "neutral"}
    assert 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["macro_f1"] <= 1.0
    assert sum(map(sum, test["confusion"])) == test["count"] == 42
    with (trained_run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])


def test_tiny_run_learns(trained_run: Path) -> None:
    # Three short epochs are too few for BatchNorm's moving statistics to settle, so
    # inference accuracy says little here; the training loss must still fall.
    with (trained_run / "history.csv").open() as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    assert losses[-1] < losses[0]


def test_metrics_match_train_evaluate(trained_run: Path, fer_csv: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    m = json.loads((trained_run / "metrics.json").read_text())
    capsys.readouterr()
    code = evaluate_main(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                          "--json"])
    assert code == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == m["test"]["accuracy"]
    assert evaluated["confusion"] == m["test"]["confusion"]


def test_resume_continues_from_last_epoch(trained_run: Path, fer_csv: Path,
                                          tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(trained_run, run)
    assert train_main(["--data", str(fer_csv), "--epochs", "4", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0.2", "--resume",
                       "--arch", "edge"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 4
    with (run / "history.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1, 2, 3]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


def test_resume_with_another_monitor_starts_the_selection_over(
        trained_run: Path, fer_csv: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "by-accuracy"
    shutil.copytree(trained_run, run)
    assert json.loads((run / "state.json").read_text())["early"]["monitor"] == "val_loss"
    assert train_main(["--data", str(fer_csv), "--epochs", "5", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0.2", "--resume",
                       "--arch", "edge",
                       "--monitor", "val_accuracy"]) == 0
    early = json.loads((run / "state.json").read_text())["early"]
    with (run / "history.csv").open() as fh:
        accuracies = [float(r["val_accuracy"]) for r in csv.DictReader(fh)][3:]
    # The loss-based best from before the resume (a value above 1) no longer counts.
    assert early["monitor"] == "val_accuracy"
    assert early["best"] == pytest.approx(max(accuracies))
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == (
        4 + accuracies.index(max(accuracies)))


def test_resume_under_another_preset_or_split_exits_2(trained_run: Path, fer_csv: Path,
                                            tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    run = tmp_path / "other-arch"
    shutil.copytree(trained_run, run)
    assert train_main(["--data", str(fer_csv), "--epochs", "4", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0.2", "--resume",
                       "--arch", "edge-plus"]) == 2
    assert "is an 'edge' run, not 'edge-plus'; pass --arch edge" in caplog.text
    assert json.loads((run / "state.json").read_text())["epoch"] == 3  # left as it was
    caplog.clear()
    assert train_main(["--data", str(fer_csv), "--epochs", "4", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0", "--lr-schedule", "cosine",
                       "--resume", "--arch", "edge"]) == 2
    assert "trained with a held-out split; drop --val-fraction 0" in caplog.text
    assert json.loads((run / "state.json").read_text())["epoch"] == 3


def test_init_from_starts_at_the_parent_weights(trained_run: Path, fer_csv: Path,
                                                tmp_path: Path) -> None:
    import keras

    run = tmp_path / "warm"
    # A learning rate this small leaves the kernels where they started, so they show
    # whether the run began from the parent's weights or from a fresh initialisation.
    assert train_main(["--data", str(fer_csv), "--epochs", "1", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0.2", "--lr", "1e-12",
                       "--arch", "edge",
                       "--init-from", str(trained_run / "best.keras")]) == 0
    parent = keras.models.load_model(trained_run / "best.keras")
    child = keras.models.load_model(run / "best.keras")
    pairs = [(c, p) for c, p in zip(child.layers, parent.layers, strict=True)
             if isinstance(p, keras.layers.Conv2D)]
    assert pairs
    for c, p in pairs:
        np.testing.assert_allclose(c.get_weights()[0], p.get_weights()[0], atol=1e-6)
    record = json.loads((run / "metrics.json").read_text())["init_from"]
    assert record["model"] == str(trained_run / "best.keras")
    assert len(record["sha256"]) == 64
    assert record["epochs"] == 3 and "--epochs 3" in record["command"]


def test_a_warm_restart_draws_a_fresh_stream_and_keeps_it_on_resume(
        trained_run: Path, fer_csv: Path, tmp_path: Path) -> None:
    parent = json.loads((trained_run / "metrics.json").read_text())
    assert parent["stream_seed"] == parent["seed"] == 1337
    common = ["--data", str(fer_csv), "--batch-size", "16", "--val-fraction", "0.2",
              "--arch", "edge", "--init-from", str(trained_run / "best.keras")]
    seeds = []
    for name in ("warm-a", "warm-b"):
        assert train_main([*common, "--epochs", "1", "--out", str(tmp_path / name)]) == 0
        seeds.append(json.loads((tmp_path / name / "metrics.json").read_text())["stream_seed"])
    # Not the parent's stream (which it would replay), but the same one for the same parent.
    assert seeds[0] != 1337 and seeds[0] == seeds[1]
    # Unless asked for, as re-running a run made before warm restarts had their own stream.
    assert train_main([*common, "--epochs", "1", "--out", str(tmp_path / "replay"),
                       "--stream-seed", "1337"]) == 0
    assert json.loads((tmp_path / "replay" / "metrics.json").read_text())["stream_seed"] == 1337
    assert train_main([*common, "--epochs", "2", "--out", str(tmp_path / "warm-a"),
                       "--resume"]) == 0
    assert json.loads((tmp_path / "warm-a" / "state.json").read_text())["stream_seed"] == seeds[0]
    assert json.loads((tmp_path / "warm-a" / "metrics.json").read_text())["stream_seed"] == seeds[0]


def test_init_from_a_bad_model_exits_2(trained_run: Path, fer_csv: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    common = ["--data", str(fer_csv), "--epochs", "1", "--batch-size", "16",
              "--val-fraction", "0.2"]
    assert train_main([*common, "--out", str(tmp_path / "a"),
                       "--init-from", str(tmp_path / "missing.keras")]) == 2
    assert "no model file" in caplog.text
    assert train_main([*common, "--out", str(tmp_path / "b"), "--arch", "mlp",
                       "--init-from", str(trained_run / "best.keras")]) == 2
    assert "pass --arch edge" in caplog.text


def test_teacher_targets_are_blended_in_and_recorded(trained_run: Path, fer_csv: Path,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:

    run = tmp_path / "student"
    with caplog.at_level(logging.INFO, logger="train.fit"):
        assert train_main(["--data", str(fer_csv), "--epochs", "1", "--out", str(run),
                           "--batch-size", "16", "--val-fraction", "0.2", "--arch", "mlp",
                           "--teacher", str(trained_run / "best.keras"),
                           "--teacher", str(trained_run / "last.keras"),
                           "--distill-weight", "0.3", "--distill-temperature", "2"]) == 0
    assert "targets are 30 % teacher" in caplog.text
    m = json.loads((run / "metrics.json").read_text())
    record = m["teachers"]
    assert [t["model"] for t in record["models"]] == [str(trained_run / "best.keras"),
                                                       str(trained_run / "last.keras")]
    assert record["weight"] == 0.3 and record["temperature"] == 2.0
    assert 0.0 <= record["train_agreement"] <= 1.0
    first = record["models"][0]
    assert first["epochs"] == 3 and len(first["sha256"]) == 64
    assert m["config"]["teachers"] == [t["model"] for t in record["models"]]

    # A resume must learn from the same soft labels, or it is a different run.
    resume = ["--data", str(fer_csv), "--epochs", "2", "--out", str(run), "--batch-size", "16",
              "--val-fraction", "0.2", "--arch", "mlp", "--resume",
              "--distill-weight", "0.3", "--distill-temperature", "2"]
    caplog.clear()
    assert train_main([*resume, "--teacher", str(trained_run / "best.keras")]) == 2
    assert "resume with the same --teacher files" in caplog.text
    assert "top class equals the label" not in caplog.text, "refused before the teacher pass"
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    assert train_main([*resume, "--teacher", str(trained_run / "best.keras"),
                       "--teacher", str(trained_run / "last.keras")]) == 0
    assert json.loads((run / "state.json").read_text())["epoch"] == 2


def test_a_missing_teacher_exits_2(fer_csv: Path, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    assert train_main(["--data", str(fer_csv), "--epochs", "1", "--out", str(tmp_path / "r"),
                       "--teacher", str(tmp_path / "missing.keras")]) == 2
    assert "teacher: no model file" in caplog.text
    with pytest.raises(SystemExit):
        train_main(["--teacher", "x.keras", "--distill-weight", "0"])


def test_bad_data_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    assert train_main(["--data", str(bad), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2


def test_an_sgd_run_trains_with_nesterov_momentum_and_records_it(
        fer_csv: Path, tmp_path: Path) -> None:
    import keras

    run = tmp_path / "sgd"
    assert train_main(["--data", str(fer_csv), "--epochs", "1", "--out", str(run),
                       "--batch-size", "16", "--val-fraction", "0.2", "--optimizer", "sgd",
                       "--lr", "0.01", "--weight-decay", "5e-4"]) == 0
    opt = keras.models.load_model(run / "last.keras").optimizer
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.nesterov and opt.momentum == pytest.approx(0.9)
    assert opt.weight_decay == pytest.approx(5e-4)
    config = json.loads((run / "metrics.json").read_text())["config"]
    assert config["optimizer"] == "sgd" and config["weight_decay"] == pytest.approx(5e-4)


def test_val_fraction_0_trains_on_every_face_and_keeps_the_last_epoch(
        fer_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import keras

    run = tmp_path / "all"
    argv = ["--data", str(fer_csv), "--out", str(run), "--batch-size", "16", "--arch", "mlp",
            "--val-fraction", "0", "--lr-schedule", "cosine", "--patience", "1"]
    with caplog.at_level(logging.INFO, logger="train.fit"):
        assert train_main([*argv, "--epochs", "1"]) == 0
        # Resumed to a fixed length: no validation, so patience cannot end it early.
        assert train_main([*argv, "--epochs", "3", "--resume"]) == 0
    assert "train 84 faces, validation 0 faces" in caplog.text  # all 12 per class
    held_out = [a if a != "0" else "0.2" for a in argv]
    assert train_main([*held_out, "--epochs", "4", "--resume"]) == 2
    assert "pass --val-fraction 0" in caplog.text
    m = json.loads((run / "metrics.json").read_text())
    assert m["validation"] is None
    assert m["epochs"] == m["best_epoch"] == 3
    assert m["selection"].startswith("last epoch")
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and {r["val_accuracy"] for r in rows} == {"NA"}
    best = keras.models.load_model(run / "best.keras").get_weights()
    last = keras.models.load_model(run / "last.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(best, last, strict=True))


def test_make_optimizer() -> None:
    import keras

    assert type(make_optimizer("adam", 1e-3)) is keras.optimizers.Adam
    assert isinstance(make_optimizer("adam", 1e-3, 1e-4), keras.optimizers.AdamW)
    assert make_optimizer("sgd", 0.01).weight_decay is None
    with pytest.raises(ValueError, match="use adam or sgd"):
        make_optimizer("rmsprop", 1e-3)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer("sgd", 0.01, -1.0)


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--erase", "1.5"],
                                  ["--weight-decay", "-1"], ["--optimizer", "rmsprop"],
                                  ["--erase", "0.5", "--no-augment"],
                                  ["--val-fraction", "0"], ["--val-fraction", "-0.1"],
                                  ["--quantize-aware"],
                                  ["--quantize-aware", "--init-from", "m.keras",
                                   "--precision", "mixed_bfloat16"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        train_main(argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_class_weights() -> None:
    labels = np.repeat(np.arange(7), [10, 1, 10, 10, 10, 10, 10])
    w = class_weights(labels, "balanced")
    assert w[1] == pytest.approx(61 / 7)
    assert w[0] == pytest.approx(61 / 70)
    assert class_weights(labels, "sqrt")[1] == pytest.approx((61 / 7) ** 0.5)
    assert class_weights(labels, "none") is None


def test_evaluate_an_ensemble_scores_the_mean_of_the_probabilities(
        trained_run: Path, fer_csv: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from train import presets
    from train.data import load
    from train.evaluate import predict_probs
    from train.metrics import classification_metrics

    # An untrained model leaning hard towards one class, so the mean moves the top class.
    mlp = presets.build("mlp")
    kernel, bias = mlp.get_layer("probs").get_weights()
    bias[3] = 2.0
    mlp.get_layer("probs").set_weights([kernel, bias])
    other = tmp_path / "mlp.keras"
    mlp.save(other)
    trained = trained_run / "best.keras"
    faces = load(fer_csv, ("PublicTest",))["PublicTest"]
    alone = predict_probs(trained, faces.images)
    mean = (alone + predict_probs(other, faces.images)) / 2
    assert (mean.argmax(axis=1) != alone.argmax(axis=1)).any()
    expected = classification_metrics(faces.labels, mean.argmax(axis=1))
    capsys.readouterr()
    assert evaluate_main(["--model", str(trained), "--model", str(other), "--data",
                          str(fer_csv), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["confusion"] == expected["confusion"]
    assert result["model"] == f"{trained} + {other}"
    assert evaluate_main(["--model", str(trained), "--model", str(tmp_path / "none.keras"),
                          "--data", str(fer_csv)]) == 2


def test_evaluate_flip_average_is_the_mean_over_the_mirror(trained_run: Path) -> None:
    from train.evaluate import predict_probs

    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48), np.uint8)
    model = trained_run / "best.keras"
    expected = (predict_probs(model, faces) + predict_probs(model, faces[:, :, ::-1])) / 2
    np.testing.assert_allclose(predict_probs(model, faces, flip_average=True), expected,
                               atol=1e-5)


def test_a_run_stopped_carried_and_resumed_equals_the_uninterrupted_one(
        fer_csv: Path, tmp_path: Path) -> None:
    import keras

    from train.carry import main as carry_main

    common = ["--data", str(fer_csv), "--batch-size", "16", "--val-fraction", "0.2",
              "--arch", "edge", "--lr-schedule", "cosine", "--test-usage", "", "--epochs", "4"]
    whole = tmp_path / "whole"
    assert train_main([*common, "--out", str(whole)]) == 0
    first = tmp_path / "first-machine"
    assert train_main([*common, "--out", str(first), "--stop-after", "2"]) == 0
    assert json.loads((first / "state.json").read_text())["epoch"] == 2
    assert not (first / "metrics.json").exists()
    parts = tmp_path / "committed"
    assert carry_main(["pack", str(first), str(parts), "--part-mb", "0.5"]) == 0
    assert all(p.stat().st_size <= 500_000 for p in parts.glob("part-*.bin"))
    assert len(list(parts.glob("part-*.bin"))) > 1
    manifest = json.loads((parts / "carry.json").read_text())
    assert manifest["continue"].endswith("--resume") and "--stop-after" not in manifest["continue"]
    second = tmp_path / "second-machine"
    assert carry_main(["unpack", str(parts), str(second)]) == 0
    assert train_main([*common, "--out", str(second), "--resume"]) == 0
    with (whole / "history.csv").open() as a, (second / "history.csv").open() as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))
    for name in ("last.keras", "best.keras"):
        x = keras.models.load_model(whole / name).get_weights()
        y = keras.models.load_model(second / name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(x, y, strict=True)), name


def test_carry_refuses_altered_parts_and_non_runs(trained_run: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from train.carry import main as carry_main

    assert carry_main(["pack", str(tmp_path), str(tmp_path / "x")]) == 2
    assert "not a run folder" in caplog.text
    parts = tmp_path / "parts"
    assert carry_main(["pack", str(trained_run), str(parts)]) == 0
    part = next(parts.glob("part-*.bin"))
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    assert carry_main(["unpack", str(parts), str(tmp_path / "back")]) == 2
    assert "sha256 differs" in caplog.text
    assert carry_main(["unpack", str(tmp_path / "nothing"), str(tmp_path / "back")]) == 2


def test_a_run_asked_to_stop_ends_after_the_epoch_saved_and_resumes(
        fer_csv: Path, tmp_path: Path) -> None:
    import threading

    from train.__main__ import parse_args
    from train.fit import run

    out = tmp_path / "run"
    argv = ["--data", str(fer_csv), "--batch-size", "16", "--val-fraction", "0.2",
            "--arch", "edge", "--test-usage", "", "--epochs", "3", "--out", str(out)]
    asked = threading.Event()
    asked.set()  # as SIGTERM would during the first epoch
    assert run(parse_args(argv)[0], asked) == {"stopped_after": 1}
    assert json.loads((out / "state.json").read_text())["epoch"] == 1
    assert not (out / "metrics.json").exists() and not list(out.glob("*.saving.keras"))
    assert train_main([*argv, "--resume"]) == 0
    assert json.loads((out / "state.json").read_text())["epoch"] == 3
    assert (out / "metrics.json").exists()


def test_sigterm_asks_the_run_to_stop_after_its_epoch() -> None:
    import os
    import signal

    from train.__main__ import stop_on_signal

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        asked = stop_on_signal()
        os.kill(os.getpid(), signal.SIGTERM)
        assert asked.wait(30)
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
