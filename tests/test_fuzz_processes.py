"""The commands themselves under a fuzz of flags: each run ends on its own with a documented
exit code (0, 1 or 2), never a traceback, a signal (a crash in OpenCV or LiteRT) or a
hang. Slower than the in-process fuzz of tests/test_fuzz.py (a process per case), so a
seeded sample; ``EDGE_FUZZ_CASES`` runs more, ``EDGE_FUZZ_SEED`` others."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import camera_index
from tests.fixtures import ROOT
from tests.test_fuzz import NASTY

#: A run that takes longer is a hang: every case ends in a few seconds or is refused.
HANG_S = 20

#: Each command, its flags, and what keeps a valid run short.
COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "edge": (["--config", "--source", "--model", "--events", "--max-frames", "--workers",
              "--device", "--port", "--log-level", "--annotate-video"],
             ["--source", "clip.mp4", "--max-frames", "5"]),
    "edge.predict": (["--config", "--model", "--annotate", "--chart"], []),
    "fleet.consume": (["--host", "--port", "--prefix", "--client-id", "--username",
                       "--password-file", "--ca-file", "--out", "--max-seconds"],
                      ["--host", "127.0.0.1", "--port", "1", "--max-seconds", "2"]),
    "fleet.load": (["--host", "--port", "--prefix", "--devices", "--rate", "--seconds"],
                   ["--host", "127.0.0.1", "--port", "1", "--seconds", "1"]),
}


#: Files a case may name (or overwrite): copies, made in the case's own folder.
COPIES = {"photo.jpg": "models/sample/astronaut.jpg", "clip.mp4": "models/sample/astronaut.mp4",
          "model.keras": "models/emotion_ferplus.keras"}


def _value(rng: random.Random) -> str:
    v = rng.choice([*NASTY, *COPIES, "/dev/stdin", "/tmp", "-", "--web", "out.jpg", "out.mp4"])
    text = (v if isinstance(v, str) else "9" * 4400 if isinstance(v, int) and v > 10**100
            else repr(v))
    return text.replace("\x00", "")[:10_000]  # no NUL in an argument; long stays long


def _live(source: str) -> bool:
    """A camera or a stream: the device waits for it as long as it takes, by design."""
    return camera_index(source) is not None or "://" in source


def _cases(count: int, seed: int = 1) -> list[list[str]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        command = rng.choice(sorted(COMMANDS))
        flags, keep_short = COMMANDS[command]
        argv = []
        for flag in rng.sample(flags, rng.randint(1, 3)):
            value = _value(rng)
            while command == "edge" and flag == "--source" and _live(value):
                value = _value(rng)
            argv += [flag, value]
        if command == "edge.predict":
            argv.append(_value(rng))  # the photo
        # The keep-short flags go first: a fuzzed flag given later wins.
        cases.append(["-m", command, *keep_short, *argv])
    return cases


@pytest.mark.parametrize("argv", _cases(int(os.environ.get("EDGE_FUZZ_CASES", "40")),
                                         int(os.environ.get("EDGE_FUZZ_SEED", "1"))))
def test_a_command_ends_with_a_documented_code(argv: list[str], tmp_path: Path) -> None:
    # In a folder of its own: what a case writes (events, pictures) stays there.
    for name, source in COPIES.items():
        shutil.copyfile(ROOT / source, tmp_path / name)
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True,
                              timeout=HANG_S, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung past {HANG_S} s: {argv!r}")
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode in (0, 1, 2), (done.returncode, argv, stderr[-2000:])
    assert "Traceback" not in stderr, (argv, stderr[-2000:])


#: Cases the fuzz found, kept: each is refused in one line with exit 2.
FOUND = [
    ["-m", "fleet.load", "--host", "", "--seconds", "1"],
    ["-m", "fleet.load", "--host", "x" * 70 + ".com", "--seconds", "1"],
    ["-m", "fleet.consume", "--host", "x" * 70 + ".com"],
    ["-m", "fleet.consume", "--port", "1", "--username", "\udc80"],
    ["-m", "fleet.consume", "--port", "1", "--username", "u", "--password-file", "clip.mp4"],
    ["-m", "fleet.consume", "--port", "1", "--out", "x" * 300],
    ["-m", "edge.predict", "x" * 4400],
    ["-m", "edge.predict", "--chart", "9" * 300, "photo.jpg"],
    ["-m", "edge", "--source", "\u0663", "--max-frames", "5"],
    ["-m", "edge", "--source", "rtsp://", "--max-frames", "5"],
    ["-m", "edge", "--source", "9" * 4400, "--max-frames", "5"],
]


@pytest.mark.parametrize("argv", FOUND, ids=range(len(FOUND)))
def test_what_the_fuzz_found_is_refused_in_one_line(argv: list[str], tmp_path: Path) -> None:
    for name, source in COPIES.items():
        shutil.copyfile(ROOT / source, tmp_path / name)
    done = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True,
                          timeout=HANG_S, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdin=subprocess.DEVNULL)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2 and "Traceback" not in stderr, (done.returncode, stderr[-1500:])
