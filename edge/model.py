"""The emotion classifier: a ``.tflite`` model plus its model card, on the device runtime.

The card (``<model>.json`` next to the model, written by ``python -m convert.quantize``)
is the only source of labels and of the input contract; nothing here guesses them.
Runtime import order: LiteRT (``ai_edge_litert``), then ``tflite_runtime``, then
``tensorflow.lite`` as a last resort on a workstation.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.model_files import sha256_of
from edge.preprocessing import FACE_SIZE

log = logging.getLogger(__name__)

#: Runtime names accepted by :func:`load_runtime`, in the order ``auto`` tries them.
RUNTIMES: tuple[str, ...] = ("litert", "tflite_runtime", "tensorflow")

_RUNTIME_MODULES = {
    "litert": ("ai_edge_litert.interpreter", "ai_edge_litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite_runtime"),
    "tensorflow": ("tensorflow.lite", "tensorflow"),
}


class ModelError(RuntimeError):
    """A model or card that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Runtime:
    """An interpreter class and where it came from."""

    name: str
    version: str
    interpreter_class: type


@dataclass(frozen=True)
class ModelCard:
    """What the device needs to know about a model (a subset of the card JSON)."""

    id: str
    labels: tuple[str, ...]
    mode: str
    sha256: str | None
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any, where: str = "card") -> ModelCard:
        """Validate a card dict; raises :class:`ModelError` naming the field and the fix."""
        if not isinstance(data, dict):
            raise ModelError(f"{where}: a model card is a JSON object, got "
                             f"{type(data).__name__}")
        fix = "re-create the card with python -m convert.quantize"
        labels, card_id = data.get("labels"), data.get("id")
        if not isinstance(card_id, str) or not card_id:
            raise ModelError(f"{where}: missing or invalid field 'id'; {fix}")
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise ModelError(f"{where}: 'labels' must be a list of class names; {fix}")
        if not labels:
            raise ModelError(f"{where}: 'labels' is empty")
        if len(set(labels)) != len(labels):
            raise ModelError(f"{where}: 'labels' names a class twice; {fix}")
        pre = data.get("preprocessing", {})
        if not isinstance(pre, dict):
            raise ModelError(f"{where}: 'preprocessing' must be an object; {fix}")
        size = pre.get("size", [FACE_SIZE, FACE_SIZE])
        if not isinstance(size, list) or size != [FACE_SIZE, FACE_SIZE]:
            raise ModelError(f"{where}: input size {size!r} is not [{FACE_SIZE}, {FACE_SIZE}]")
        sha = data.get("sha256")
        return cls(card_id, tuple(labels), str(data.get("mode", "unknown")),
                   sha if isinstance(sha, str) else None, data)

    def accuracies(self) -> dict[str, float | None]:
        """The card's PublicTest scores (None where the card has none): FER-2013 labels,
        every face's plain FER+ majority, and the FER+ paper's protocol (what papers cite)."""
        ferplus = self.raw.get("evaluation_ferplus", {})
        return {"accuracy_fer2013": self.raw.get("evaluation", {}).get("accuracy"),
                "accuracy_ferplus": ferplus.get("accuracy"),
                "accuracy_ferplus_paper": ferplus.get("paper", {}).get("accuracy")}

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read and validate a card file."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{p}: model card not found; every .tflite needs its card "
                             "(<model>.json) written by python -m convert.quantize") from None
        except UnicodeDecodeError:
            raise ModelError(f"{p}: model card is not UTF-8 JSON; re-create it with "
                             "python -m convert.quantize") from None
        except (OSError, json.JSONDecodeError, RecursionError) as exc:
            raise ModelError(f"{p}: unreadable model card ({str(exc)[:120]})") from None
        return cls.from_dict(data, str(p))


def card_path_for(model_path: str | Path) -> Path:
    """The card that belongs to a model file: same name, ``.json`` suffix."""
    return Path(model_path).with_suffix(".json")


def load_runtime(preferred: str = "auto") -> Runtime:
    """Import a TFLite interpreter: ``auto`` tries LiteRT, tflite_runtime, TensorFlow.

    Raises:
        ModelError: none of the runtimes (or the one asked for) is importable.
    """
    names = RUNTIMES if preferred == "auto" else (preferred,)
    tried = []
    for name in names:
        if name not in _RUNTIME_MODULES:
            raise ModelError(f"unknown runtime '{name}'; use auto or one of {', '.join(RUNTIMES)}")
        module_name, dist = _RUNTIME_MODULES[name]
        try:
            with warnings.catch_warnings():
                # tf.lite.Interpreter warns that it is deprecated; the log line below says
                # which runtime is in use, once.
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except ImportError as exc:
            tried.append(f"{name} ({exc})")
            continue
        version = _dist_version(dist)
        return Runtime(name, version, module.Interpreter)
    raise ModelError("no TFLite runtime found: tried " + "; ".join(tried)
                     + ". Install one with: pip install ai-edge-litert")


@contextlib.contextmanager
def _native_info_held_back() -> Iterator[None]:
    """Hold back the runtime's native ``INFO:`` notices while an interpreter is built.

    LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    file descriptor 2, past Python's logging, on every start. Whatever else is written
    there meanwhile is passed on; with DEBUG logging everything is.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if not line.startswith("INFO: "):
                    print(line, file=sys.stderr)


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (dist, dist.replace("_", "-"), "tensorflow-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


class EmotionClassifier:
    """Classifies 48x48 uint8 faces with a TFLite model; all faces of a frame in one invoke.

    Args:
        model_path: the ``.tflite`` file.
        card: its card; read from ``<model>.json`` when not given.
        threads: interpreter threads (1 is best when several pipeline workers run).
        runtime: ``auto`` or one of :data:`RUNTIMES`.

    Raises:
        ModelError: missing or corrupt model, missing card, or a card that does not match.
    """

    def __init__(self, model_path: str | Path, card: ModelCard | None = None, threads: int = 1,
                 runtime: str = "auto") -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        self.card = card if card is not None else ModelCard.load(card_path_for(path))
        if self.card.sha256 and self.card.sha256 != sha256_of(path):
            raise ModelError(f"{path}: sha256 differs from its card's; the card belongs to "
                             "another model (re-run python -m convert.quantize)")
        self.runtime = load_runtime(runtime)
        try:
            with _native_info_held_back():
                self._interp = self.runtime.interpreter_class(model_path=str(path),
                                                              num_threads=threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a loadable TFLite model ({exc})") from None
        self.path = path
        self.labels = self.card.labels
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input_dtype = np.dtype(inp["dtype"])
        self.output_dtype = np.dtype(out["dtype"])
        #: (scale, zero point) of the input and output tensors; (1.0, 0) when float.
        self.input_quantization = _quant(inp)
        self.output_quantization = _quant(out)
        if tuple(inp["shape"][1:]) != (FACE_SIZE, FACE_SIZE, 1):
            raise ModelError(f"{path}: input shape {list(inp['shape'])} is not "
                             f"[N, {FACE_SIZE}, {FACE_SIZE}, 1]")
        if int(out["shape"][-1]) != len(self.labels):
            raise ModelError(f"{path}: {out['shape'][-1]} outputs but the card has "
                             f"{len(self.labels)} labels")
        self._batch = int(inp["shape"][0])
        self._batchable = True
        self._buf = np.empty((self._batch, FACE_SIZE, FACE_SIZE, 1), self.input_dtype)
        # Debug: a device loads one per worker, and whoever loads them says so once.
        log.debug("model %s (%s, %s input) on %s %s, %d thread(s)", path.name, self.card.mode,
                  self.input_dtype, self.runtime.name, self.runtime.version, threads)

    def describe(self) -> str:
        """One line naming the model, its mode and input, and the runtime it runs on."""
        return (f"model {self.path.name} ({self.card.mode}, {self.input_dtype} input) on "
                f"{self.runtime.name} {self.runtime.version}")

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of faces.

        Args:
            faces: ``(N, 48, 48)`` or ``(N, 48, 48, 1)`` uint8 raw pixels.

        Returns:
            ``(N, len(labels))`` float32 probabilities, rows in input order.
        """
        faces = np.asarray(faces)
        if faces.dtype != np.uint8:
            raise ValueError(f"faces must be uint8 pixels, got {faces.dtype}")
        n = faces.shape[0]
        faces = faces.reshape(n, FACE_SIZE, FACE_SIZE, 1)
        if n == 0:
            return np.empty((0, len(self.labels)), np.float32)
        if self._batchable and n != self._batch:
            self._resize(n)
        if not self._batchable and n != self._batch:
            return np.concatenate([self.classify(faces[i:i + 1]) for i in range(n)])
        self._quantize(faces, self._buf)
        self._interp.set_tensor(self._in_index, self._buf)
        self._interp.invoke()
        return self._dequantize(self._interp.get_tensor(self._out_index))

    def classify_many(self, faces: np.ndarray, batch: int = 64) -> np.ndarray:
        """Probabilities for any number of faces (a data set), ``batch`` faces per invoke."""
        if len(faces) == 0:
            return np.empty((0, len(self.labels)), np.float32)
        return np.concatenate([self.classify(faces[i:i + batch])
                               for i in range(0, len(faces), batch)])

    def probabilities(self, faces: np.ndarray) -> list[dict[str, float]]:
        """Per-face ``{emotion: probability}`` dicts (the convenience form of :meth:`classify`)."""
        return [dict(zip(self.labels, map(float, row), strict=True))
                for row in self.classify(faces)]

    def _resize(self, n: int) -> None:
        try:
            self._interp.resize_tensor_input(self._in_index, [n, FACE_SIZE, FACE_SIZE, 1],
                                             strict=False)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            # Graphs with a batch-1 reshape cannot be resized; fall back to one face per invoke.
            log.info("model does not take batches (%s); classifying faces one at a time", exc)
            self._interp.resize_tensor_input(self._in_index, [1, FACE_SIZE, FACE_SIZE, 1])
            self._interp.allocate_tensors()
            self._batchable, n = False, 1
        self._batch = n
        self._buf = np.empty((n, FACE_SIZE, FACE_SIZE, 1), self.input_dtype)

    def _quantize(self, faces: np.ndarray, out: np.ndarray) -> None:
        scale, zero = self.input_quantization
        if self.input_dtype == np.float32:
            np.copyto(out, faces, casting="unsafe")
        elif scale == 1.0 and self.input_dtype == np.int8 and zero == -128:
            # pixel - 128 as int8 is the pixel with its top bit flipped.
            np.bitwise_xor(faces, np.uint8(0x80), out=out.view(np.uint8))
        elif scale == 1.0 and self.input_dtype == np.uint8 and zero == 0:
            np.copyto(out, faces)
        else:
            info = np.iinfo(self.input_dtype)
            q = np.rint(faces / scale + zero)
            np.copyto(out, np.clip(q, info.min, info.max), casting="unsafe")

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.float32:
            return raw.copy()
        scale, zero = self.output_quantization
        return (raw.astype(np.float32) - zero) * scale


def _quant(details: dict[str, Any]) -> tuple[float, int]:
    scale, zero = details.get("quantization", (0.0, 0))
    return (float(scale) or 1.0), int(zero)
