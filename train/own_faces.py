"""Your own faces: a folder of photos sorted by emotion, cropped like the device crops.

Layout: one folder per class directly under the root (``my_faces/happy/*.jpg``,
``my_faces/neutral/...``, class names as :data:`train.data` accepts them), and optionally
``my_faces/test/<class>/`` for a held-out set of your choosing. Without ``test/``, a
stratified share of every class is held out automatically (seeded, so reruns agree).

Photos of any size and colour go through the device's own Haar detector and crop
(:func:`edge.vision.faces.extract_faces` with the default detector settings), so the faces
trained on look exactly like the faces the device classifies. A 48x48 grayscale image is
taken as an already-cropped face. A photo with no face, or with several, is reported and
left out: which face would the label belong to?
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.capture.image_files import IMAGE_SUFFIXES, ImageError, read_image
from edge.config import DetectorConfig
from edge.preprocessing import FACE_SIZE
from edge.vision.faces import FaceDetector, extract_faces
from train.faceset import CLASS_ALIASES, DataError, FaceSet, stratified_split

log = logging.getLogger(__name__)

#: Share of each class held out for the final test when there is no ``test/`` folder.
HELD_OUT = 0.2


@dataclass
class CropReport:
    """What happened to each photo: used, or why not."""

    used: int = 0
    no_face: list[Path] = field(default_factory=list)
    several_faces: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)

    def rejects(self) -> list[tuple[Path, str]]:
        """Every photo left out, with why."""
        return [(p, what) for what, paths in self._reasons() for p in paths]

    def log(self, where: Path, listed_in: Path | None = None) -> None:
        """Say what was left out and why: every photo, or the first few and the file
        ``listed_in`` that lists them all."""
        shown = 20 if listed_in is not None else None
        for what, paths in self._reasons():
            if paths:
                rest = (f" ... (all {len(paths)} in {listed_in})"
                        if shown is not None and len(paths) > shown else "")
                log.warning("%s: %d photo(s) left out, %s: %s%s", where, len(paths), what,
                            ", ".join(p.name for p in paths[:shown]), rest)
        log.info("%s: %d face(s) used", where, self.used)

    def _reasons(self) -> list[tuple[str, list[Path]]]:
        return [("no face found", self.no_face),
                ("several faces (which one is labelled?)", self.several_faces),
                ("unreadable", self.unreadable)]


def is_own_faces(root: Path) -> bool:
    """Whether ``root`` holds class folders directly (this layout, not ``<split>/<class>``)."""
    return root.is_dir() and any(d.is_dir() and d.name.lower() in CLASS_ALIASES
                                 for d in root.iterdir())


def crop_faces(folder: Path, detector: FaceDetector, margin: float,
               report: CropReport) -> tuple[list[np.ndarray], list[int], list[Path]]:
    """The one face of each photo in ``folder``'s class subfolders, its label and file."""
    faces: list[np.ndarray] = []
    labels: list[int] = []
    files: list[Path] = []
    for class_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
        label = CLASS_ALIASES.get(class_dir.name.lower())
        if label is None:
            if class_dir.name.lower() != "test":
                log.warning("%s: not a class name; left out", class_dir)
            continue
        for photo in sorted(f for f in class_dir.iterdir()
                            if f.suffix.lower() in IMAGE_SUFFIXES):
            face = _one_face(photo, detector, margin, report)
            if face is not None:
                faces.append(face)
                labels.append(label)
                files.append(photo)
    return faces, labels, files


def _one_face(photo: Path, detector: FaceDetector, margin: float,
              report: CropReport) -> np.ndarray | None:
    try:
        gray = read_image(photo, cv2.IMREAD_GRAYSCALE)
    except ImageError:
        report.unreadable.append(photo)
        return None
    if gray.shape == (FACE_SIZE, FACE_SIZE):
        report.used += 1
        return gray.copy()
    boxes = detector.detect(gray)
    if not boxes:
        report.no_face.append(photo)
        return None
    if len(boxes) > 1:
        report.several_faces.append(photo)
        return None
    report.used += 1
    return extract_faces(gray, boxes, margin)[0].copy()


def load_own_faces(root: Path, seed: int = 1337) -> dict[str, FaceSet]:
    """``Training`` and ``PublicTest`` face sets from a folder of your photos.

    Raises:
        DataError: no usable face, or a class with too few faces to hold one out.
    """
    cfg = DetectorConfig()
    detector = FaceDetector(cfg)
    train = _face_set(root, detector, cfg.margin, f"{root} [own faces]")
    test_dir = root / "test"
    if test_dir.is_dir():
        test = _face_set(test_dir, detector, cfg.margin, f"{test_dir} [own faces]")
    else:
        keep, held = stratified_split(train.labels, HELD_OUT, seed)
        if len(held) == 0 or len(keep) == 0:
            raise DataError(f"{root}: too few faces to hold {HELD_OUT:.0%} out for testing; "
                            "add photos or a test/ folder")
        test = FaceSet(train.images[held], train.labels[held],
                       f"{root} [own faces, held out {HELD_OUT:.0%}]", labelled_by=OWN_LABELS)
        train = FaceSet(train.images[keep], train.labels[keep], train.source,
                        labelled_by=OWN_LABELS)
    warn_if_tiny(test)
    return {"Training": train, "PublicTest": test}


#: How a report names the labels of your own photos.
OWN_LABELS = "your labels"

#: Fewer test faces than this make an accuracy too coarse to compare two models by.
TINY_TEST = 30


def warn_if_tiny(test: FaceSet) -> None:
    """Say so when a test set is too small for its accuracy to mean much."""
    if len(test) < TINY_TEST:
        log.warning("%s: only %d face(s) to test on: one face moves the accuracy by %.0f "
                    "points; add photos (at least %d test faces) or a test/ folder",
                    test.source, len(test), 100 / max(1, len(test)), TINY_TEST)


def _face_set(folder: Path, detector: FaceDetector, margin: float, name: str) -> FaceSet:
    """Every usable face of ``folder``'s class folders, the rest reported."""
    report = CropReport()
    faces, labels, _ = crop_faces(folder, detector, margin, report)
    report.log(folder)
    if not faces:
        raise DataError(f"{folder}: no usable face in the class folders (see the lines above)")
    return FaceSet(np.stack(faces), np.asarray(labels, np.int64), name,
                   labelled_by=OWN_LABELS)
