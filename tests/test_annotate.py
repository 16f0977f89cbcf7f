"""The annotated video: every frame written in order by its own thread, and a writer that
fails ends the run instead of being lost in that thread."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.annotate import VideoAnnotator
from edge.config import TrackingConfig
from edge.frames import Frame
from edge.preprocessing import EMOTIONS
from edge.stats import Stats
from edge.vision.tracking import Tracker
from tests.fixtures import wait_until


def frames(n: int) -> list[Frame]:
    return [Frame(i, time.time(), time.monotonic(), np.full((96, 128), 8 * i, np.uint8))
            for i in range(n)]


def test_every_frame_is_written_in_order_and_the_frame_itself_is_left_as_it_was(
        tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    annotator = VideoAnnotator(str(out), 10.0, Stats())
    tracker = Tracker(TrackingConfig(), EMOTIONS, "dev", "m")
    shown = frames(20)
    for f in shown:
        annotator(f, [], tracker)
    annotator.close()
    annotator.close()  # twice is harmless
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    means = []
    while (got := cap.read())[0]:
        means.append(float(got[1][40:, :].mean()))
    assert means == sorted(means)  # the frames' gray levels rise: written in order
    assert all(f.image is None and f.gray.max() == 8 * f.seq for f in shown)


def test_a_writer_that_cannot_open_ends_the_run_from_the_collector(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    annotator = VideoAnnotator(str(blocker / "out.mp4"), 10.0, Stats())  # a file as folder
    tracker = Tracker(TrackingConfig(), EMOTIONS, "dev", "m")
    f0, f1 = frames(2)
    annotator(f0, [], tracker)  # handed over; the encoder thread fails on it

    def raised() -> bool:
        try:
            annotator(f1, [], tracker)
        except OSError:
            return True
        return False

    assert wait_until(raised, timeout=30)
    annotator.close()
    with pytest.raises(OSError):
        annotator(f1, [], tracker)
