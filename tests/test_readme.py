"""The README's commands run from a clone: every ``python -m ...`` line names a module
that answers ``--help``, its flags exist, and the quick start's run command works."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import ROOT

README = (ROOT / "README.md").read_text()
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
#: Modules a device install cannot import (TensorFlow): their --help is checked alone.
COMMANDS = sorted({line.split("#")[0].strip().split(" && ")[-1]
                   for block in SHELL_BLOCKS for line in block.splitlines()
                   if line.strip().startswith("python -m ") and "pytest" not in line})


def test_the_readme_stays_a_users_page() -> None:
    assert len(README.splitlines()) <= 300
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in link:
            assert (ROOT / link).exists(), link


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_names_a_module_and_flags_it_has(command: str) -> None:
    words = shlex.split(command.replace("\\", ""))
    module = words[2]
    helped = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr[-500:]
    for flag in (w for w in words[3:] if w.startswith("--")):
        assert flag in helped.stdout, f"{module}: no {flag}"


def test_the_quick_start_runs_on_the_bundled_defaults(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    r = subprocess.run([sys.executable, "-m", "edge", "--config", "config.yaml", "--events",
                        str(events), "--max-frames", "40"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1000:]
    assert '"type":"appeared"' in events.read_text()
