"""Haar detection on a real photograph, nothing on blank frames, FER-like crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import DetectorConfig
from edge.vision.boxes import crop_box, iou
from edge.vision.faces import DetectorError, FaceDetector, extract_faces
from tests.fixtures import ROOT

PHOTO = ROOT / "models/sample/astronaut.jpg"
FACE = (174, 66, 98, 98)  # where the astronaut's face is, checked by eye


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return cv2.imread(str(PHOTO), cv2.IMREAD_GRAYSCALE)


def test_finds_the_face_in_a_real_photograph(gray: np.ndarray) -> None:
    boxes = FaceDetector(DetectorConfig()).detect(gray)
    assert len(boxes) == 1
    assert iou(boxes[0], FACE) > 0.6


def test_nothing_in_blank_or_noise_frames() -> None:
    det = FaceDetector(DetectorConfig())
    assert det.detect(np.zeros((480, 640), np.uint8)) == []
    assert det.detect(np.full((480, 640), 255, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
    assert det.detect(noise) == []


def test_boxes_map_back_to_full_resolution(gray: np.ndarray) -> None:
    big = cv2.resize(gray, (1024, 1024))
    boxes = FaceDetector(DetectorConfig(detect_width=320)).detect(big)
    scaled = tuple(v * 2 for v in FACE)
    assert len(boxes) == 1 and iou(boxes[0], scaled) > 0.6


def test_detection_around_a_tracked_face(gray: np.ndarray) -> None:
    det = FaceDetector(DetectorConfig())
    x, y, w, h = FACE
    moved = (x + 15, y - 10, w, h)  # where the face was a frame ago
    boxes = det.detect_around(gray, [moved], 0.5)
    assert len(boxes) == 1 and iou(boxes[0], FACE) > 0.6
    assert det.detect_around(gray, [(380, 300, 100, 100)], 0.5) == []  # no face there
    big = cv2.resize(gray, (1024, 1024))
    boxes = det.detect_around(big, [tuple(v * 2 for v in moved)], 0.5)
    assert len(boxes) == 1 and iou(boxes[0], tuple(v * 2 for v in FACE)) > 0.6


def test_min_size_filters_small_faces(gray: np.ndarray) -> None:
    assert FaceDetector(DetectorConfig(min_size=150)).detect(gray) == []


def test_crop_is_square_with_margin_and_inside_the_frame() -> None:
    assert crop_box((100, 100, 50, 60), (480, 640), 0.2) == (83, 88, 84, 84)
    x, y, w, h = crop_box((0, 0, 100, 100), (480, 640), 0.5)
    assert (x, y) == (0, 0) and w == h == 200
    x, y, w, h = crop_box((600, 440, 40, 40), (480, 640), 0.25)
    assert x + w <= 640 and y + h <= 480


def test_extract_faces_shapes_and_reuse(gray: np.ndarray) -> None:
    buf = np.empty((4, 48, 48), np.uint8)
    faces = extract_faces(gray, [FACE, FACE], 0.15, buf)
    assert faces.shape == (2, 48, 48) and faces.base is buf
    np.testing.assert_array_equal(faces[0], faces[1])
    assert extract_faces(gray, [FACE] * 6, 0.15, buf).shape == (6, 48, 48)


def test_bad_cascade(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="no such cascade file"):
        FaceDetector(DetectorConfig(cascade=str(tmp_path / "x.xml")))
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(DetectorError, match="not a valid cascade"):
        FaceDetector(DetectorConfig(cascade=str(bad)))
