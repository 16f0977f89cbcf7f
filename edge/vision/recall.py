"""How many hand-boxed faces a detector finds in real photos, and how many boxes it adds.

The box file is dlib's image-metadata XML (``<image file=...><box top left width
height/></image>``), the format of the boxed photos the benchmark reads. A found box
counts for a hand-drawn one when they overlap by IoU >= :data:`MATCH_IOU` (each drawn
box matched at most once); a found box that matches none is a false box.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.vision.boxes import Box, iou_matrix

#: Overlap at which a found box counts for a drawn one (hand boxes are tighter or looser
#: than any detector's framing; 0.3 is the usual tolerance for that).
MATCH_IOU = 0.3


@dataclass(frozen=True)
class Recall:
    """Faces found over the boxed photos."""

    faces: int  # hand-drawn boxes
    found: int  # of those, matched by a found box
    false: int  # found boxes matching no drawn one
    photos: int
    sizes: tuple[int, int]  # smallest and largest drawn box side

    @property
    def share(self) -> float:
        return self.found / self.faces if self.faces else 0.0


def read_boxes(xml_path: Path) -> dict[str, list[Box]]:
    """Photo file name -> its drawn boxes, from a dlib image-metadata XML file.

    Raises:
        ValueError: not such a file (with the path and the cause).
    """
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{xml_path}: not a readable box file ({exc})") from None
    out: dict[str, list[Box]] = {}
    for image in root.iter("image"):
        name = image.get("file")
        if not name:
            continue
        out[name] = [Box(int(b.get("left", 0)), int(b.get("top", 0)), int(b.get("width", 0)),
                         int(b.get("height", 0))) for b in image.iter("box")]
    return out


def matched(truth: list[Box], found: list[Box]) -> int:
    """How many ``truth`` boxes a distinct ``found`` box overlaps by ``MATCH_IOU`` or more
    (greedy, best overlaps first)."""
    if not truth or not found:
        return 0
    overlaps = iou_matrix(truth, found)
    hits = 0
    while overlaps.size and overlaps.max() >= MATCH_IOU:
        i, j = np.unravel_index(int(overlaps.argmax()), overlaps.shape)
        overlaps[i, :] = 0
        overlaps[:, j] = 0
        hits += 1
    return hits


def score(folder: Path, boxes: dict[str, list[Box]],
          detect: Callable[[np.ndarray], list[Box]],
          read: Callable[[Path], np.ndarray]) -> Recall:
    """``detect``'s recall and false boxes over the boxed photos in ``folder``.

    Args:
        folder: where the photos are.
        boxes: :func:`read_boxes`'s result.
        detect: gray image -> face boxes.
        read: photo path -> gray image.
    """
    faces = found = false = 0
    sides = [min(b.w, b.h) for drawn in boxes.values() for b in drawn]
    for name, drawn in boxes.items():
        got = detect(read(folder / name))
        hits = matched(drawn, got)
        faces, found, false = faces + len(drawn), found + hits, false + len(got) - hits
    return Recall(faces, found, false, len(boxes),
                  (min(sides), max(sides)) if sides else (0, 0))
