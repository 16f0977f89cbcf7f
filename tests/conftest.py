"""Shared fixtures: generated data, and one tiny trained + converted model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import write_csv, write_votes

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: What CI must have: there, a missing piece fails the run instead of skipping tests.
_CI_REQUIRES = {
    "tensorflow": "pip install -e '.[dev]'",
    "ai_edge_litert": "pip install -e '.[edge]'",
    "cv2": "pip install -e '.[edge]'",
    "paho.mqtt": "pip install -e '.[edge]'",
    "flask": "pip install -e '.[web]'",
    "waitress": "pip install -e '.[web]'",
    "prometheus_client": "pip install -e '.[web]'",
    "selenium": "pip install -e '.[dev]'",
    "cryptography": "pip install -e '.[dev]'",
    "wheel": "pip install -e '.[dev]'",
}
_CI_BINARIES = {"mosquitto": "apt-get install -y mosquitto",
                "systemd-analyze": "apt-get install -y systemd",
                "chromium": "apt-get install -y chromium",
                "chromedriver": "apt-get install -y chromium-driver",
                "prometheus": "apt-get install -y prometheus"}


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI", "").lower() != "true":
        return
    import importlib.util
    import shutil

    missing = [f"{mod} ({fix})" for mod, fix in _CI_REQUIRES.items()
               if importlib.util.find_spec(mod) is None]
    missing += [f"{exe} ({fix})" for exe, fix in _CI_BINARIES.items()
                if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()]
    if missing:
        raise pytest.UsageError("CI=true but these are missing, so tests would be skipped: "
                                + ", ".join(missing))


@pytest.fixture(scope="session")
def fer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable FER-2013 CSV (Training 12/class, PublicTest 6/class)."""
    return write_csv(tmp_path_factory.mktemp("data") / "fer.csv", 12, 6)


@pytest.fixture(scope="session")
def ferplus_votes(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    """FER+ votes for ``fer_csv``: the majority agrees with the label except on rows 0-2."""
    return write_votes(tmp_path_factory.mktemp("votes") / "votes.csv", fer_csv,
                       relabel={0: 3, 1: 3, 2: 3})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, fer_csv: Path) -> Path:
    """A run folder from a 3-epoch training of the edge preset on ``fer_csv``."""
    pytest.importorskip("tensorflow")
    from train.__main__ import main

    out = tmp_path_factory.mktemp("run") / "tiny"
    code = main(["--data", str(fer_csv), "--epochs", "3", "--out", str(out),
                 "--batch-size", "16", "--val-fraction", "0.2", "--lr", "3e-3",
                 "--arch", "edge"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory, trained_run: Path,
              fer_csv: Path) -> Path:
    """``trained_run``'s best model converted in every mode (min agreement relaxed)."""
    from convert.quantize import main

    out = tmp_path_factory.mktemp("models")
    code = main(["--model", str(trained_run / "best.keras"), "--data", str(fer_csv),
                 "--out", str(out), "--mode", "all", "--calibration", "40",
                 "--min-agreement", "0.8", "--latency-runs", "20"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def device_models(request: pytest.FixtureRequest) -> Path:
    """A folder with ``emotion_int8.tflite`` and its card for the device-side tests.

    With TensorFlow (the dev install), ``converted``: every mode of a model trained here.
    On an edge-only install (no TensorFlow), the shipped model's folder, so the device
    tests still run there; tests of the other modes skip.
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        return request.getfixturevalue("converted")
    return Path(__file__).resolve().parent.parent / "models"


def model_mode(folder: Path, mode: str) -> Path:
    """``emotion_<mode>.tflite`` in ``folder``; skips the test when that mode is not there."""
    path = folder / f"emotion_{mode}.tflite"
    if not path.is_file():
        pytest.skip(f"no {mode} model without TensorFlow (the shipped folder has int8 only)")
    return path


#: Test modules that train or convert with TensorFlow: the ``train`` marker, so
#: ``pytest -m "not train"`` runs the rest (what a device install can run) in minutes.
_TRAIN_MODULES = {"test_convert", "test_distill", "test_distribute", "test_fine_tune",
                  "test_from_tflite", "test_inputs", "test_multi_worker", "test_presets",
                  "test_quant_aware", "test_train", "test_train_ferplus"}


#: Integration tests (real processes, brokers, a browser, the installer, clips): the
#: ``slow`` marker, so ``pytest -m "not slow"`` runs the unit tests in under a minute.
_SLOW_MODULES = {"test_bench", "test_crowd", "test_edge_cli", "test_fleet",
                 "test_fleet_broker", "test_hardening", "test_layers", "test_mqtt",
                 "test_mqtt_failures", "test_systemd", "test_web_browser",
                 "test_fuzz_processes", "test_web_availability"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        if module in _TRAIN_MODULES or "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.train)
            item.add_marker(pytest.mark.slow)
        elif module in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
