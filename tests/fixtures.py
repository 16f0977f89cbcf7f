"""Shared by the tests: the repository's root, a polling helper, and small generated
FER-2013-shaped data (learnable, deterministic, no downloads)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.preprocessing import EMOTIONS, FACE_SIZE

#: The repository's root: the bundled models, samples and configs are read from it.
ROOT = Path(__file__).resolve().parents[1]


def make_faces(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` faces for each emotion: horizontal stripes on a noisy face.

    The stripe count encodes the class, which survives the training augmentation (flips,
    small shifts and rotations), so a small CNN learns it within a few epochs.
    """
    rng = np.random.default_rng(seed)
    n = per_class * len(EMOTIONS)
    labels = np.repeat(np.arange(len(EMOTIONS)), per_class)
    yy = np.arange(FACE_SIZE, dtype=float)[:, None]
    images = np.empty((n, FACE_SIZE, FACE_SIZE), np.uint8)
    for i, label in enumerate(labels):
        phase = rng.uniform(0, 2 * np.pi)
        stripes = 60 * np.sin(2 * np.pi * (label + 1) * yy / FACE_SIZE + phase)
        face = 120 + stripes + rng.normal(0, 12, (FACE_SIZE, FACE_SIZE))
        images[i] = np.clip(face, 0, 255).astype(np.uint8)
    order = rng.permutation(n)
    return images[order], labels[order]


def csv_rows(images: np.ndarray, labels: np.ndarray, usage: str) -> list[str]:
    """Rows of the original CSV layout (no header)."""
    return [f"{int(lab)},{' '.join(map(str, img.ravel()))},{usage}"
            for img, lab in zip(images, labels, strict=True)]


def write_csv(path: Path, per_class_train: int = 12, per_class_test: int = 6,
              seed: int = 0) -> Path:
    """A FER-2013 CSV with Training and PublicTest rows; gzip-compressed for ``.gz`` names."""
    tr = make_faces(per_class_train, seed)
    te = make_faces(per_class_test, seed + 1)
    text = "\n".join(["emotion,pixels,Usage", *csv_rows(*tr, "Training"),
                      *csv_rows(*te, "PublicTest")]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def write_folder(root: Path, per_class: int = 3, seed: int = 0,
                 names: dict[int, str] | None = None) -> Path:
    """An image-folder dataset ``root/{train,test}/<class>/*.png``."""
    import cv2

    names = names or dict(enumerate(EMOTIONS))
    for split, s in (("train", seed), ("test", seed + 1)):
        images, labels = make_faces(per_class, s)
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            d = root / split / names[int(lab)]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return root


#: FER+ vote columns in the file's order, and the FER-2013 emotion of each of the first seven.
FERPLUS_HEADER = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                  "contempt,unknown,NF")
_FERPLUS_EMOTIONS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")


def ferplus_row(usage: str, label: int, votes: int = 8, extra: dict[int, int] | None = None
                ) -> str:
    """A FER+ row giving ``votes`` to FER-2013 class ``label`` (plus ``extra`` column: votes)."""
    counts = [0] * 10
    counts[_FERPLUS_EMOTIONS.index(EMOTIONS[label])] = votes
    for col, n in (extra or {}).items():
        counts[col] += n
    return f"{usage},img.png,{','.join(map(str, counts))}"


def write_votes(path: Path, csv_path: Path, relabel: dict[int, int] | None = None) -> Path:
    """FER+ votes for every row of a FER-2013 CSV made by :func:`write_csv`.

    Each face gets 8 votes for its own label and 2 for neutral, except the data rows in
    ``relabel`` (row -> FER-2013 class the majority votes for instead).
    """
    relabel = relabel or {}
    rows = [FERPLUS_HEADER]
    with csv_path.open() as fh:
        next(fh)
        for i, line in enumerate(fh):
            label_text, _, usage = line.strip().split(",")
            rows.append(ferplus_row(usage, relabel.get(i, int(label_text)), extra={0: 2}))
    path.write_text("\n".join(rows) + "\n")
    return path


def wait_until(condition: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; returns its last truth.

    Tests wait for what they are about to assert instead of sleeping a guessed time, so a
    busy machine makes them slower, never wrong.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(interval)
    return True


def write_own_photos(root: Path, face_photo: Path, per_class: int = 16,
                     label: str = "surprise", seed: int = 0) -> Path:
    """A "my faces" folder made from one real face photo: ``root/<label>/*.jpg``.

    Each photo pastes the face (a crop of ``face_photo``) at a random size and place onto
    a plain background of random shade, mirrored half the time and re-lit, all labelled
    ``label`` (the user's own naming of that expression). Also writes a photo with no face
    and one with two faces, which preparation must report and leave out.
    """
    import cv2

    rng = np.random.default_rng(seed)
    photo = cv2.imread(str(face_photo))
    face = photo[30:300, 140:400]  # the face with some hair and collar around it
    folder = root / label
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        canvas = np.empty((360, 480, 3), np.uint8)
        canvas[:] = rng.integers(40, 220, 3)
        side = int(rng.integers(170, 300))
        f = cv2.resize(face, (side, side))
        if rng.random() < 0.5:
            f = f[:, ::-1]
        f = np.clip(f.astype(np.float32) * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8)
        x, y = int(rng.integers(0, 480 - side)), int(rng.integers(0, 360 - side))
        canvas[y:y + side, x:x + side] = f
        cv2.imwrite(str(folder / f"{label}_{i:03d}.jpg"), canvas)
    cv2.imwrite(str(folder / "empty_room.jpg"), np.full((300, 400, 3), 90, np.uint8))
    two = np.full((360, 800, 3), 60, np.uint8)
    small = cv2.resize(face, (260, 260))
    two[50:310, 60:320] = small
    two[50:310, 480:740] = small
    cv2.imwrite(str(folder / "two_people.jpg"), two)
    return root
