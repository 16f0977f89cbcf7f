"""How a model's files are named and known: the conversion modes, the file name of each,
and the content hash that model cards, runs and teachers record."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Conversion modes of ``python -m convert.quantize``, the shipped one (int8) first.
MODES: tuple[str, ...] = ("int8", "float16", "dynamic", "float32")


def model_filename(name: str, mode: str) -> str:
    """The file a converted model is written to and looked up as: ``<name>_<mode>.tflite``."""
    return f"{name}_{mode}.tflite"


def sha256_of(path: str | Path) -> str:
    """SHA-256 hex digest of a file, or of a folder's files (relative path + bytes, sorted).

    Files are read in blocks, so a data set of any size hashes in constant memory.
    """
    p = Path(path)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
