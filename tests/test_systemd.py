"""The systemd unit (systemd-analyze verify) and the idempotent installer."""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load
from tests.fixtures import ROOT

UNIT = ROOT / "systemd" / "emotion-edge.service"
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
# install.sh --offline builds the wheel with this Python's setuptools and wheel (dev extra).
needs_build_tools = pytest.mark.skipif(
    importlib.util.find_spec("wheel") is None or importlib.util.find_spec("setuptools") is None,
    reason="install.sh --offline needs setuptools and wheel: pip install -e '.[dev]'")


def dependencies_visible() -> dict[str, str]:
    """The environment in which an --offline install finds its dependencies.

    On a Pi they come from the system site packages (apt), which the installer's venv
    sees. When the tests run in a virtualenv, that venv sees the base interpreter's
    packages, not this one's: put this one's on its path instead (PYTHONPATH runs no
    .pth file, so the checkout's editable install is not among them)."""
    if sys.prefix == sys.base_prefix:
        return {}
    return {"PYTHONPATH": os.pathsep.join(site.getsitepackages())}


def verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify`` on a copy whose ExecStart points at this Python."""
    unit = folder / "emotion-edge.service"
    unit.write_text(unit_text.replace("/opt/emotion-edge/venv/bin/python", sys.executable))
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)


def problems(result: subprocess.CompletedProcess) -> list[str]:
    # verify exits 0 on a misspelt key or a bad value and only warns on stderr, so any
    # stderr line about this unit is a failure.
    return [ln for ln in result.stderr.splitlines() if "emotion-edge.service" in ln]


@needs_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert problems(result) == []


@needs_analyze
def test_the_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    bad = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    assert problems(verify(bad, tmp_path))


def test_unit_has_what_the_service_needs() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "DeviceAllow=char-video4linux rw", "User=emotion-edge",
                 "SupplementaryGroups=video", "RestartPreventExitStatus=2", "MemoryMax=",
                 "TasksMax="):
        assert line in text, line


@needs_build_tools
def test_installer_is_idempotent_and_keeps_the_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cmd = ["bash", str(ROOT / "systemd" / "install.sh"), "--destdir", str(root),
           "--no-enable", "--offline", "--prefix", "/opt/ee"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable,
           "HOME": str(tmp_path)}
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    venv_python = root / "opt/ee/venv/bin/python"
    probe = subprocess.run([str(venv_python), "-c", "import edge, edge.model; "
                            "print(edge.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60, env={**os.environ, **dependencies_visible()})
    assert probe.returncode == 0, probe.stderr
    assert str(ROOT) not in probe.stdout  # the installed copy, not the checkout

    config = root / "etc/emotion-edge/config.yaml"
    cfg = load(config)
    assert cfg.source.uri == 0
    assert cfg.model.path == "/opt/ee/models/emotion_ferplus_int8.tflite"
    assert Path(str(root) + cfg.model.path).is_file()
    assert cfg.sinks.log.path == "/var/lib/emotion-edge/events.jsonl"
    assert cfg.state_dir == "/var/lib/emotion-edge"
    assert (root / "opt/ee/models/sample/astronaut.mp4").exists()
    unit = (root / "etc/systemd/system/emotion-edge.service").read_text()
    assert "ExecStart=/opt/ee/venv/bin/python -m edge" in unit

    config.write_text(config.read_text().replace("# device: hall", "device: hall"))
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0, second.stderr
    assert "kept the existing config" in second.stdout
    assert load(config).device == "hall"



@pytest.mark.parametrize("args", [["--prefix", "/opt/a|b"], ["--prefix", "/opt/a&b"],
                                  ["--prefix", "relative"], ["--prefix", "/opt/a b"],
                                  ["--user", "Bad User"], ["--user", "x|y"],
                                  ["--user", "root"],
                                  ["--mqtt-password-file", "/no/such/file"]])
def test_installer_refuses_names_that_would_corrupt_the_unit(args: list[str],
                                                             tmp_path: Path) -> None:
    cmd = ["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(tmp_path / "root"),
           "--no-enable", "--offline", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert args[0] in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "root").exists()  # refused before touching anything


@needs_build_tools
def test_installer_installs_the_mqtt_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    root = tmp_path / "root"
    cmd = ["bash", str(ROOT / "systemd/install.sh"), "--destdir", str(root), "--no-enable",
           "--offline", "--mqtt-password-file", str(secret)]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable,
           "HOME": str(tmp_path)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    installed = root / "etc/emotion-edge/mqtt.password"
    assert installed.read_text() == "s3cret\n"
    assert installed.stat().st_mode & 0o777 == 0o640
    cfg = load(root / "etc/emotion-edge/config.yaml")
    assert cfg.sinks.mqtt.password_file == "/etc/emotion-edge/mqtt.password"
    assert "s3cret" not in result.stdout + result.stderr
