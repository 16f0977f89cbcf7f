"""Crops worth classifying: the thresholds on tables, and a face whose crops are not
usable is tracked and counted but reported with an emotion only once one is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config import QualityConfig, TrackingConfig
from edge.events import EVENT_SCHEMA
from edge.preprocessing import EMOTIONS
from edge.vision.boxes import Box
from edge.vision.quality import judge, sharpness, turn
from edge.vision.tracking import Tracker
from tests.scenes import face_patch

Q = QualityConfig()
SHARP = face_patch(48)
BLURRED = cv2.GaussianBlur(SHARP, (0, 0), 2.5)


@pytest.mark.parametrize(("box", "crop", "turned", "why"), [
    (Box(0, 0, 80, 80), SHARP, None, None),
    (Box(0, 0, 80, 80), SHARP, 0.1, None),                 # nearly facing the camera
    (Box(0, 0, 30, 30), SHARP, None, "small"),             # a back row
    (Box(0, 0, 80, 80), SHARP, 0.9, "turned"),             # far into profile
    (Box(0, 0, 80, 80), BLURRED, None, "blurred"),
    (Box(0, 0, 30, 30), BLURRED, 0.9, "small"),            # the first reason found
    (Box(0, 0, 80, 80), np.full((48, 48), 128, np.uint8), None, "blurred"),  # no face
])
def test_judge(box: Box, crop: np.ndarray, turned: float | None, why: str | None) -> None:
    assert judge(box, crop, Q, turned) == why


def test_thresholds_of_zero_let_everything_through() -> None:
    off = QualityConfig(min_face=0, min_sharpness=0)
    assert judge(Box(0, 0, 10, 10), np.zeros((48, 48), np.uint8), off) is None


@pytest.mark.parametrize(("eyes", "nose", "expected"), [
    (((40, 50), (60, 50)), (50, 60), 0.0),      # facing the camera
    (((40, 50), (60, 50)), (55, 60), 0.25),     # turned a little
    (((40, 50), (60, 50)), (30, 60), 1.0),      # in profile
    (((40, 40), (60, 60)), (45, 55), 0.0),      # a tilted head, facing the camera
    (((50, 50), (50, 50)), (50, 60), float("inf")),  # no eye distance
])
def test_turn(eyes, nose, expected: float) -> None:
    assert turn(eyes, nose) == pytest.approx(expected, abs=1e-6)


def test_sharpness_orders_sharp_and_blurred_faces() -> None:
    assert sharpness(SHARP) > Q.min_sharpness > sharpness(BLURRED)


HAPPY = np.eye(len(EMOTIONS), dtype=np.float32)[EMOTIONS.index("happy")]


def _run(rows: list[tuple[str | None]]) -> tuple[Tracker, list]:
    tracker = Tracker(TrackingConfig(min_hits=3), EMOTIONS, "dev", "m")
    events = []
    for frame, why in enumerate(rows):
        events += tracker.update(frame, 0.0, 0.0, [Box(10, 10, 80, 80)], HAPPY[None, :],
                                 withheld=[why], classified=np.array([why is None]))
    return tracker, events


def test_a_face_with_unusable_crops_is_counted_and_not_reported() -> None:
    tracker, events = _run(["turned"] * 6)
    assert events == []
    assert tracker.counted() == 1 and tracker.withheld() == {"turned": 1}


def test_its_first_usable_crop_reports_it_with_that_crop_s_emotion() -> None:
    tracker, events = _run(["small"] * 4 + [None])
    assert [e.type for e in events] == ["appeared"]
    assert events[0].emotion == "happy" and events[0].confidence == pytest.approx(1.0)
    assert events[0].withheld is None and tracker.withheld() == {}


def test_a_reported_face_turning_away_keeps_its_emotion_and_says_why() -> None:
    tracker, events = _run([None] * 3 + ["turned"] * 3)
    assert [e.type for e in events] == ["appeared"]
    left = tracker.flush(6, 0.0, 0.0)
    assert left[0].emotion == "happy" and left[0].withheld == "turned"
    assert left[0].to_dict()["withheld"] == "turned"
    assert "withheld" not in events[0].to_dict()
    assert set(EVENT_SCHEMA["properties"]["withheld"]["enum"]) == {"small", "blurred", "turned"}
