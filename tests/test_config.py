"""Config loading: defaults, the shipped config.yaml, and each kind of error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.__main__ import main as edge_main
from edge.config import Config, ConfigError, load
from tests.fixtures import ROOT


def test_shipped_config_is_valid_and_documents_every_key() -> None:
    cfg = load(ROOT / "config.yaml")
    assert isinstance(cfg, Config)
    assert cfg.source.uri == str(ROOT / "models/sample/astronaut.mp4")
    text = (ROOT / "config.yaml").read_text()
    # Every leaf key is documented: a comment sits above it or above its group.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue
        above = [ln.strip() for ln in lines[max(0, i - 6):i]]
        assert any(a.startswith("#") for a in above), f"undocumented: {line}"
    for key in ("detect_width", "min_neighbors", "change_frames", "spool_max_events",
                "annotate_video", "password_file", "homeassistant_discovery"):
        assert f"{key}:" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source.fps": -3}, "source.fps: must be > 0, got -3"),
        ({"source.kind": "webcam"}, "source.kind: must be one of auto, opencv, picamera2, images"),
        ({"detector.colour": 1}, "detector.colour: unknown key; allowed keys here:"),
        ({"model.threads": "two"}, "model.threads: must be an integer, got 'two'"),
        ({"source.loop": "yes"}, "source.loop: must be true or false, got 'yes'"),
        ({"sinks.mqtt.port": 70000}, "sinks.mqtt.port: must be in 1..65535, got 70000"),
        ({"tracking.smoothing": 0}, "tracking.smoothing: must be in (0, 1]"),
        ({"device": "a/b"}, "device: must be a non-empty name without '/'"),
        ({"source.reconnect.max_s": 0.5}, "source.reconnect.max_s: must be >= initial_s"),
        ({"pipeline.workers": 0}, "pipeline.workers: must be in 1..16, got 0"),
    ],
)
def test_errors_name_the_key_value_and_rule(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, overrides)
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not readable YAML"):
        load(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load(scalar)
    section = tmp_path / "section.yaml"
    section.write_text("source: 5\n")
    with pytest.raises(ConfigError, match="source: must be a mapping"):
        load(section)


def test_overrides_apply_after_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("source:\n  uri: a.mp4\n  fps: 10\n")
    cfg = load(f, {"source.uri": "b.mp4"})
    assert cfg.source.uri == "b.mp4" and cfg.source.fps == 10.0


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("source:\n  fps: -3\n")
    result = subprocess.run([sys.executable, "-m", "edge", "--config", str(f)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "source.fps: must be > 0, got -3" in lines[0]


def test_cli_missing_model_and_corrupt_model_exit_2(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert edge_main(["--model", str(tmp_path / "none.tflite"), "--source",
                      str(ROOT / "models/sample/astronaut.jpg")]) == 2
    assert "model file not found" in caplog.text
    corrupt = tmp_path / "bad.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    corrupt.with_suffix(".json").write_text('{"id": "x", "labels": ["a", "b"]}')
    assert edge_main(["--model", str(corrupt), "--source",
                      str(ROOT / "models/sample/astronaut.jpg")]) == 2
    assert "not a loadable TFLite model" in caplog.text


def test_cli_missing_source_file_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    assert edge_main(["--source", "no/such/clip.mp4"]) == 2
    assert "source.uri: no/such/clip.mp4: no such file" in caplog.text


def test_paths_in_a_file_are_relative_to_its_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    f = folder / "c.yaml"
    f.write_text("state_dir: state\nsource:\n  uri: clips/a.mp4\nmodel:\n  path: m.tflite\n"
                 "detector:\n  cascade: default\nsinks:\n  log:\n    path: /var/log/e.jsonl\n"
                 "  mqtt:\n    tls:\n      ca_file: $HOME/ca.pem\n")
    monkeypatch.setenv("HOME", "/home/me")
    monkeypatch.chdir(tmp_path)
    cfg = load(Path("etc/c.yaml"), {"pipeline.annotate_video": "out.mp4"})
    assert cfg.state_dir == str(Path("etc") / "state")
    assert cfg.source.uri == str(Path("etc") / "clips/a.mp4")
    assert cfg.model.path == str(Path("etc") / "m.tflite")
    assert cfg.detector.cascade == "default"  # a name, not a path
    assert cfg.sinks.log.path == "/var/log/e.jsonl"
    assert cfg.sinks.mqtt.tls.ca_file == "/home/me/ca.pem"
    assert cfg.pipeline.annotate_video == "out.mp4"  # the command line: current directory


def test_the_shipped_model_is_found_from_any_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load(None)
    assert Path(cfg.model.path).is_file()
    assert Path(cfg.model.path) == ROOT / "models/emotion_ferplus_int8.tflite"
    from_elsewhere = load(ROOT / "config.yaml")
    assert Path(from_elsewhere.source.uri).is_file()


def test_ranges_are_declared_on_the_fields_and_checked_by_the_loader() -> None:
    import dataclasses

    from edge.config import DetectorConfig

    bounds = {f.name: f.metadata.get("range") for f in dataclasses.fields(DetectorConfig)}
    assert bounds["margin"].describe() == "[0, 1]"
    assert bounds["scale_factor"].describe() == "[1.01, 2]"
    with pytest.raises(ConfigError, match=r"detector\.detect_width: must be 0 \(as min_size "
                                          r"needs\) or in 80\.\.4096 pixels, got 79"):
        load(None, {"detector.detect_width": 79})
    with pytest.raises(ConfigError, match=r"detector\.margin: must be in \[0, 1\], got 1\.5"):
        load(None, {"detector.margin": 1.5})
    with pytest.raises(ConfigError, match=r"motion\.max_share: must be in \(0, 1\], got 0"):
        load(None, {"motion.max_share": 0})


@pytest.mark.parametrize("key", ["sinks.mqtt.password", "web.auth_token"])
def test_one_rule_for_secrets_from_a_file_or_the_environment(
        key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.config.secrets import read_secret

    f = tmp_path / "secret"
    f.write_text("  s3cret-value\n")
    assert read_secret(key, str(f), None) == "s3cret-value"
    monkeypatch.setenv("EDGE_SECRET", " from-env\n")
    assert read_secret(key, None, "EDGE_SECRET") == "from-env"
    assert read_secret(key, None, None) is None
    f.write_text("\n \n")
    with pytest.raises(ConfigError, match=f"{key}_file: .* is empty"):
        read_secret(key, str(f), None)
    monkeypatch.setenv("EDGE_SECRET", "   ")
    with pytest.raises(ConfigError, match=f"{key}_env: environment variable EDGE_SECRET"):
        read_secret(key, None, "EDGE_SECRET")
    with pytest.raises(ConfigError, match=f"{key}_file: cannot read"):
        read_secret(key, str(tmp_path / "none"), None)
    f.write_bytes(b"x" * 5000)
    with pytest.raises(ConfigError, match=f"{key}_file: .* longer than 4096 bytes"):
        read_secret(key, str(f), None)
