"""FER-2013 loaders for the two forms users have: the Kaggle CSV and image folders.

Both return :class:`FaceSet` objects holding 48x48 uint8 faces and integer labels in the
order of :data:`edge.preprocessing.EMOTIONS`. Malformed input raises :class:`DataError`
naming the file and the row or path.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edge.capture.image_files import IMAGE_SUFFIXES, ImageError, read_image
from edge.preprocessing import EMOTIONS, FACE_SIZE, resize_face
from train.faceset import CLASS_ALIASES, DataError, FaceSet, stratified_split
from train.own_faces import is_own_faces, load_own_faces

log = logging.getLogger(__name__)

#: Folder names the common redistributions use for each split.
_SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "Training": ("training", "train"),
    "PublicTest": ("publictest", "test", "val", "validation"),
    "PrivateTest": ("privatetest",),
}

_PIXELS = FACE_SIZE * FACE_SIZE


#: Environment variables naming the data when ``--data`` / ``--ferplus`` are not given, so
#: a workstation sets them once (README, Data) instead of repeating the paths.
DATA_ENV = "FER2013_DATA"
FERPLUS_ENV = "FERPLUS_VOTES"


def add_data_options(parser: argparse.ArgumentParser, ferplus_help: str | None) -> None:
    """``--data`` (and ``--ferplus``, unless its help is ``None``) as every workstation CLI
    spells them, defaulting to the environment variables above."""
    parser.add_argument("--data", default=os.environ.get(DATA_ENV) or None,
                        help="FER-2013 CSV (.csv or .csv.gz) or image folder "
                             f"<root>/<split>/<class>/ (default: ${DATA_ENV})")
    if ferplus_help is None:
        return
    parser.add_argument("--ferplus", default=os.environ.get(FERPLUS_ENV, ""), metavar="VOTES",
                        help=f"FER+ votes for the same CSV (fer2013new.csv[.gz]): {ferplus_help} "
                             f"(default: ${FERPLUS_ENV}, if set)")


def check_data_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 at once (before any TensorFlow import, seconds of start-up) when no data set
    was named, or the data or votes named are not there."""
    if not args.data:
        parser.error(f"--data: no data set given; pass --data PATH (the FER-2013 CSV or an "
                     f"image folder) or set {DATA_ENV} (README: Data)")
    if not Path(args.data).exists():
        parser.error(f"--data: {args.data}: no such file or folder (the FER-2013 CSV, or an "
                     "image folder; README: Data)")
    votes = getattr(args, "ferplus", "")
    if votes and not Path(votes).is_file():
        parser.error(f"--ferplus: {votes}: no such file (fer2013new.csv[.gz]; README: Data)")


def load(path: str | Path, usages: Sequence[str] = ("Training",)) -> dict[str, FaceSet]:
    """Load the requested splits from a FER-2013 CSV (plain or ``.gz``) or an image folder.

    Args:
        path: a ``.csv``/``.csv.gz`` file in the original layout, a folder laid out as
            ``<root>/<split>/<class>/*.png``, or a folder of your own photos sorted by
            class (``<root>/<class>/*.jpg``, see :mod:`train.own_faces`).
        usages: split names as in the CSV's ``Usage`` column (``Training``, ``PublicTest``,
            ``PrivateTest``); folder splits are matched by their common aliases
            (``train``, ``test``, ``val``...) or by exact folder name.

    Returns:
        One :class:`FaceSet` per requested usage, keyed by the name asked for.

    Raises:
        DataError: the path is missing, malformed, or lacks a requested split.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")

    if is_own_faces(p):
        sets = load_own_faces(p)
        return {u: sets[u] for u in usages if u in sets}
    if p.is_dir():
        return {u: load_folder_split(p, u) for u in usages}
    return load_csv(p, usages)


def load_csv(path: Path, usages: Sequence[str]) -> dict[str, FaceSet]:
    """Parse a FER-2013 CSV (``emotion,pixels,Usage``), keeping only the requested usages."""
    wanted = set(usages)
    images: dict[str, list[np.ndarray]] = {u: [] for u in usages}
    labels: dict[str, list[int]] = {u: [] for u in usages}
    rows: dict[str, list[int]] = {u: [] for u in usages}
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file")
        cols = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in ("emotion", "pixels") if c not in cols]
        if missing:
            raise DataError(
                f"{path}: line 1: header {header!r} lacks column(s) {missing}; "
                "expected 'emotion,pixels,Usage'"
            )
        i_emo, i_pix = cols["emotion"], cols["pixels"]
        i_use = cols.get("Usage")
        data_row = -1
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            data_row += 1
            usage = row[i_use].strip() if i_use is not None and i_use < len(row) else "Training"
            if usage not in wanted:
                continue
            if len(row) <= max(i_emo, i_pix):
                raise DataError(f"{path}: line {line_no}: expected 3 fields, got {len(row)}")
            labels[usage].append(_parse_label(row[i_emo], path, line_no))
            images[usage].append(_parse_pixels(row[i_pix], path, line_no))
            rows[usage].append(data_row)
    out: dict[str, FaceSet] = {}
    for u in usages:
        if not labels[u]:
            raise DataError(f"{path}: no rows with Usage '{u}'")
        out[u] = FaceSet(
            images=np.stack(images[u]).reshape(-1, FACE_SIZE, FACE_SIZE),
            labels=np.asarray(labels[u], dtype=np.int64),
            source=f"{path} [{u}]",
            rows=np.asarray(rows[u], dtype=np.int64),
        )
        log.info("loaded %d faces from %s", len(out[u]), out[u].source)
    return out


def load_folder_split(root: Path, usage: str) -> FaceSet:
    """Load one split of an image-folder dataset: ``<root>/<split>/<class>/*.png|jpg``."""
    split_dir = _find_split_dir(root, usage)
    images: list[np.ndarray] = []
    labels: list[int] = []
    class_dirs = sorted(d for d in split_dir.iterdir() if d.is_dir())
    if not class_dirs:
        raise DataError(f"{split_dir}: no class folders (expected e.g. {split_dir}/happy/)")
    import cv2

    for class_dir in class_dirs:
        label = CLASS_ALIASES.get(class_dir.name.lower())
        if label is None:
            raise DataError(
                f"{class_dir}: unknown class folder '{class_dir.name}'; "
                f"expected one of {', '.join(EMOTIONS)} (or disgusted/fearful/surprised)"
            )
        files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{class_dir}: empty class folder (no .png/.jpg images)")
        for f in files:
            try:
                img = read_image(f, cv2.IMREAD_GRAYSCALE)
            except ImageError as exc:
                raise DataError(str(exc)) from None
            images.append(resize_face(img))
            labels.append(label)
    return FaceSet(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        source=f"{split_dir}",
    )


#: Training faces (stratified, see :func:`stratified_sample`) int8 calibration draws by
#: default; quantization-aware training calibrates on the same ones.
CALIBRATION_FACES = 400


def calibration_inputs(faces: np.ndarray) -> np.ndarray:
    """``(N, 48, 48)`` uint8 faces as the ``(N, 48, 48, 1)`` float32 inputs int8 calibrates on.

    The input contract is the full 0..255 pixel range. Pinning one black and one white
    pixel in a corner makes the input quantization span it (scale 1, zero point -128: the
    device's int8 input is the pixel with its top bit flipped) whatever the calibration
    faces' own range, at a negligible change to the faces.
    """
    x = faces[..., None].astype(np.float32)
    x[:, 0, 0, 0], x[:, 0, 1, 0] = 0.0, 255.0
    return x


def stratified_sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of about ``count`` samples, each class in proportion (at least one each)."""
    if count >= len(labels):
        return np.arange(len(labels))
    _, idx = stratified_split(labels, count / len(labels), seed)
    return idx


def smoothed_onehot(labels: np.ndarray, label_smoothing: float = 0.0) -> np.ndarray:
    """``(N, 7)`` one-hot rows with ``label_smoothing`` of the mass spread over all classes."""
    n = len(EMOTIONS)
    return (np.eye(n)[labels] * (1.0 - label_smoothing) + label_smoothing / n).astype(np.float32)


def open_text(path: Path) -> io.TextIOBase:
    """A CSV file opened for :mod:`csv`, gunzipped on the fly when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _parse_label(text: str, path: Path, line_no: int) -> int:
    try:
        label = int(text)
    except ValueError:
        raise DataError(f"{path}: line {line_no}: emotion {text!r} is not an integer") from None
    if not 0 <= label < len(EMOTIONS):
        raise DataError(
            f"{path}: line {line_no}: unknown emotion label {label}; "
            f"expected 0..{len(EMOTIONS) - 1}"
        )
    return label


def _parse_pixels(text: str, path: Path, line_no: int) -> np.ndarray:
    parts = text.split()
    if len(parts) != _PIXELS:
        raise DataError(
            f"{path}: line {line_no}: {len(parts)} pixel values, expected {_PIXELS} "
            f"({FACE_SIZE}x{FACE_SIZE})"
        )
    try:
        values = np.array(parts, dtype=np.int32)
    except ValueError:
        raise DataError(f"{path}: line {line_no}: pixels contain a non-integer value") from None
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}: line {line_no}: pixel values must be in 0..255")
    return values.astype(np.uint8)


def _find_split_dir(root: Path, usage: str) -> Path:
    exact = root / usage
    if exact.is_dir():
        return exact
    aliases: Iterable[str] = _SPLIT_ALIASES.get(usage, (usage.lower(),))
    for d in sorted(root.iterdir()):
        if d.is_dir() and d.name.lower() in aliases:
            return d
    raise DataError(
        f"{root}: no folder for split '{usage}' (looked for {', '.join(aliases)}); "
        "expected <root>/<split>/<class>/*.png"
    )
