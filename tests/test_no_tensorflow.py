"""The device package never imports TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures import ROOT

_BLOCK_TF = textwrap.dedent("""
    import importlib.abc, importlib.util, pkgutil, sys
    web_extra = importlib.util.find_spec("flask") is not None

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"{name} is blocked: the device has no TensorFlow")
            return None

    sys.meta_path.insert(0, Block())
    import edge
    for mod in pkgutil.walk_packages(edge.__path__, "edge."):
        if mod.name.endswith("__main__"):
            continue
        if mod.name.startswith("edge.web") and not web_extra:
            continue  # the web extra's modules, not on a plain edge install
        __import__(mod.name)
    assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
""")


def test_every_edge_module_imports_without_tensorflow() -> None:
    result = subprocess.run([sys.executable, "-c", _BLOCK_TF], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_classifier_runs_without_tensorflow(device_models: Path) -> None:
    code = _BLOCK_TF + textwrap.dedent(f"""
        import numpy as np
        from edge.model import EmotionClassifier
        clf = EmotionClassifier({str(device_models / "emotion_int8.tflite")!r})
        assert clf.runtime.name == "litert", clf.runtime
        probs = clf.classify(np.zeros((3, 48, 48), np.uint8))
        assert probs.shape == (3, 7)
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_train_help_and_bad_flags_answer_without_tensorflow() -> None:
    block = _BLOCK_TF.split("import edge")[0]
    code = block + textwrap.dedent("""
        from train.__main__ import main
        for argv in (["--help"], ["--epochs", "0"], ["--labels", "ferplus"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code in (0, 2), (argv, exc.code)
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
