"""--distribute mirrored: MirroredStrategy over two logical CPU devices, as on two GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures import ROOT

pytest.importorskip("tensorflow")



def _train_on_two_cpus(*argv: str) -> subprocess.CompletedProcess:
    # Logical devices must be set before TensorFlow starts, so in a process of its own.
    code = textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from train.__main__ import main
        sys.exit(main({list(argv)!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_mirrored_training_runs_on_two_replicas_and_resumes(fer_csv: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--data", str(fer_csv), "--arch", "mlp", "--batch-size", "8",
              "--val-fraction", "0.2", "--distribute", "mirrored", "--out", str(out)]
    first = _train_on_two_cpus(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "mirrored over 2 device(s)" in first.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["replicas"] == {"count": 2, "workers": 1, "global_batch": 16,
                             "peak_learning_rate": 0.002}
    assert m["config"]["distribute"] == "mirrored"
    again = _train_on_two_cpus(*common, "--epochs", "2", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
