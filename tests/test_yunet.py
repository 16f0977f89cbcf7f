"""YuNet beside the cascade: one interface, a crowd in one pass, a small face entering at
720p, the plan of a per-frame detector on tables, and the model fetch (on loopback).

The detector tests need the real model, which the repository does not carry: they use the
copy in ``../shared/models/yunet/`` and skip with a reason where it is absent.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.assemble import build_detector
from edge.config import ConfigError, load
from edge.fetch import main as fetch_main
from edge.vision.boxes import Box
from edge.vision.faces import DetectorError, FaceDetector
from edge.vision.passes import PassPlan, plan_pass, reused
from edge.vision.plans import Tracked
from edge.vision.yunet import MODEL_SHA256, YuNetDetector, input_size, square_box
from tests.fixtures import ROOT
from tests.scenes import PHOTO, background, run
from tests.test_crowd import HD, crowd_clip

SHARED_MODEL = ROOT.parent / "shared/models/yunet/face_detection_yunet_2026may.onnx"
needs_model = pytest.mark.skipif(not SHARED_MODEL.is_file(),
                                 reason=f"the YuNet model is not at {SHARED_MODEL}")


def yunet(**more: object) -> object:
    return load(None, {"detector.kind": "yunet", "detector.model": str(SHARED_MODEL), **more})


def portrait(side: int) -> np.ndarray:
    """The bundled photo's head and shoulders at ``side`` pixels: its face is about a
    quarter of that as a detector frames it. A face with its hair and shoulders around it,
    as a camera shows one; a tight square cut-out looks like no face to a learned
    detector."""
    gray = cv2.imread(str(PHOTO), cv2.IMREAD_GRAYSCALE)[51:461, 51:461]
    return cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)


def photo_crowd(n: int, cols: int, rows: int, side: int = 230) -> list[np.ndarray]:
    """``n`` frames of a 720p crowd of portraits (:func:`tests.test_crowd.crowd_clip`)."""
    return crowd_clip(n, cols, rows, side, face=portrait(side), gains=False)


# -- one interface -------------------------------------------------------------------------

@needs_model
@pytest.mark.parametrize("kind", ["haar", "yunet"])
def test_both_detectors_find_the_faces_of_a_grid_behind_one_interface(kind: str) -> None:
    cfg = yunet() if kind == "yunet" else load(None, {})
    detector = build_detector(cfg)
    assert isinstance(detector, YuNetDetector if kind == "yunet" else FaceDetector)
    frame = photo_crowd(1, 4, 3)[0]
    boxes = detector.detect(frame)
    # Every person found (the cascade also takes a shoulder or two for a face).
    cells = {(int((b.x + b.w / 2) // 320), int((b.y + b.h / 2) // 240)) for b in boxes}
    assert len(cells) == 12
    assert len(boxes) == 12 if kind == "yunet" else len(boxes) <= 14
    assert all(isinstance(b, Box) and b.w >= cfg.detector.min_size for b in boxes)
    # Largest first, and each face once.
    assert [b.w * b.h for b in boxes] == sorted((b.w * b.h for b in boxes), reverse=True)


@needs_model
def test_yunet_frames_a_face_as_the_cascade_does_so_crops_match() -> None:
    face = background((480, 640))
    face[40:440, 150:550] = portrait(400)
    haar = build_detector(load(None, {})).detect(face)
    found = build_detector(yunet()).detect(face)
    assert len(haar) == len(found) == 1
    (hx, hy, hw, _), (yx, yy, yw, _) = haar[0], found[0]
    assert abs(yw / hw - 1) < 0.2
    assert abs((yx + yw / 2) - (hx + hw / 2)) < 0.1 * hw
    assert abs((yy + yw / 2) - (hy + hw / 2)) < 0.1 * hw


@needs_model
def test_yunet_returns_landmarks_inside_the_face() -> None:
    frame = background((480, 640))
    frame[40:440, 150:550] = portrait(400)
    (d,) = YuNetDetector(yunet().detector).find(frame)
    x, y, w, h = d.box
    for px, py in (d.landmarks.right_eye, d.landmarks.left_eye, d.landmarks.nose):
        assert x <= px <= x + w and y <= py <= y + h
    assert d.landmarks.right_eye[0] < d.landmarks.left_eye[0]
    assert 0.6 <= d.score <= 1.0


def test_a_missing_or_wrong_model_is_one_line_naming_the_path_and_the_command(
        tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(DetectorError, match=r"python -m edge\.fetch yunet") as exc:
        build_detector(load(None, {"detector.kind": "yunet", "detector.model": str(missing)}))
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a network")
    with pytest.raises(DetectorError, match="not a YuNet ONNX model"):
        build_detector(load(None, {"detector.kind": "yunet", "detector.model": str(junk)}))


def test_the_detector_kind_and_thresholds_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"detector\.kind"):
        load(None, {"detector.kind": "mtcnn"})
    with pytest.raises(ConfigError, match=r"detector\.score_threshold"):
        load(None, {"detector.score_threshold": 1.5})


@pytest.mark.parametrize(("frame", "min_size", "cap", "size"), [
    ((1280, 720), 48, 0, (640, 360)),      # a 48-px face is 24 px wide in the copy
    ((1280, 720), 16, 0, (1280, 720)),     # never larger than the frame
    ((1280, 720), 48, 320, (320, 180)),    # detect_width caps it
    ((640, 480), 96, 0, (160, 120)),
    ((64, 48), 48, 0, (32, 32)),           # YuNet's smallest input
])
def test_the_input_size_follows_min_size(frame: tuple[int, int], min_size: int, cap: int,
                                         size: tuple[int, int]) -> None:
    assert input_size(*frame, min_size, cap) == size


def test_square_box_keeps_the_centre() -> None:
    x, y, w, h = square_box(100, 100, 74, 100)
    assert w == h and abs((x + w / 2) - 137) <= 1 and abs((y + h / 2) - 150) <= 1


# -- the plan of a per-frame detector ------------------------------------------------------

A, B, C = Box(0, 0, 50, 50), Box(100, 0, 50, 50), Box(200, 0, 50, 50)


S1, S2, S3 = Tracked(A, True, 1), Tracked(B, True, 2), Tracked(C, True, 3)
NEW = Tracked(C, False, 4)


@pytest.mark.parametrize(("order", "tracked", "every", "classify_every", "plan"), [
    (0, (), 1, 2, PassPlan(True, ())),                       # nobody tracked
    (1, (), 2, 2, PassPlan(False, ())),                      # between passes, nobody
    (0, (S1, S2), 1, 1, PassPlan(True, ())),                 # classify all, always
    (0, (S1, S2), 1, 2, PassPlan(True, (A,))),               # phase: id 2 classified now
    (1, (S1, S2), 1, 2, PassPlan(True, (B,))),               # phase: id 1 now
    (2, (S1, S2), 2, 2, PassPlan(True, (B,))),               # phases count passes
    (4, (S1, S2), 2, 2, PassPlan(True, (A,))),
    (3, (S1, S2), 2, 2, PassPlan(False, (A, B))),            # between passes: kept
    (3, (S1, NEW), 2, 2, PassPlan(True, ())),                # a new face: a pass anyway
    (3, (Tracked(A, False, 1),), 2, 1, PassPlan(True, ())),  # a missed face: a pass
    (5, (S1, S2, S3), 1, 3, PassPlan(True, (B, C))),
])
def test_plan_pass(order: int, tracked: tuple[Tracked, ...], every: int,
                   classify_every: int, plan: PassPlan) -> None:
    assert plan_pass(order, tracked, every, classify_every) == plan


@pytest.mark.parametrize(("boxes", "plan", "expected"), [
    ([], PassPlan(True, (A,)), []),
    ([A, B], PassPlan(True, ()), [False, False]),
    ([Box(2, 2, 50, 50), B], PassPlan(True, (A,)), [True, False]),    # moved a little
    ([Box(40, 40, 50, 50)], PassPlan(True, (A,)), [False]),           # another face
])
def test_reused_matches_found_boxes_to_the_plan(boxes: list[Box], plan: PassPlan,
                                                 expected: list[bool]) -> None:
    assert reused(boxes, plan) == expected


# -- the pipeline with YuNet ---------------------------------------------------------------

@needs_model
def test_a_crowd_is_found_in_one_pass_a_frame_with_one_id_per_person() -> None:
    events, counters = run(photo_crowd(40, 4, 3), yunet(**{"detector.pass_every": 1}), 2)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 12 and len({e.face for e in events}) == 12
    assert counters["detect_full"] == 40  # one pass a frame, whatever the faces
    assert counters["faces_detected"] >= 0.95 * 12 * 40


@needs_model
def test_a_face_of_min_size_entering_an_empty_720p_scene_is_reported_within_15_frames(
) -> None:
    cfg = yunet()
    side = 220  # the face in it is about min_size (48) as the detector frames it
    face, bg = portrait(side), background(HD)
    frames = []
    for i in range(50):
        f = bg.copy()
        if i >= 20:
            x = 900 + 2 * (i - 20)
            f[300:300 + side, x - 400:x - 400 + side] = face
        frames.append(f)
    box = build_detector(cfg).detect(frames[30])[0]
    assert box.w <= 1.15 * cfg.detector.min_size
    events, _ = run(frames, cfg)
    appeared = [e for e in events if e.type == "appeared"]
    assert len(appeared) == 1 and 20 <= appeared[0].frame <= 20 + 15


# -- python -m edge.fetch yunet ------------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path):
    """A loopback HTTP server over a folder; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_model
def test_fetch_downloads_checks_and_writes_the_model(served, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    root, url = served
    (root / "yunet.onnx").write_bytes(SHARED_MODEL.read_bytes())
    dest = tmp_path / "models" / "yunet.onnx"
    caplog.set_level(logging.INFO)
    assert fetch_main(["yunet", "--url", f"{url}/yunet.onnx", "--to", str(dest)]) == 0
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == MODEL_SHA256
    assert f"wrote {dest}" in caplog.text
    # A second run finds it intact and does nothing.
    assert fetch_main(["yunet", "--url", f"{url}/missing", "--to", str(dest)]) == 0
    assert "already there" in caplog.text


def test_fetch_refuses_a_file_of_another_sha256(served, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    root, url = served
    (root / "yunet.onnx").write_bytes(b"something else")
    dest = tmp_path / "yunet.onnx"
    assert fetch_main(["yunet", "--url", f"{url}/yunet.onnx", "--to", str(dest)]) == 2
    assert not dest.exists() and "nothing written" in caplog.text
    assert not list(tmp_path.glob(".fetch-*"))


def test_fetch_says_when_the_server_is_unreachable(served, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    _, url = served
    dest = tmp_path / "yunet.onnx"
    assert fetch_main(["yunet", "--url", f"{url}/absent.onnx", "--to", str(dest)]) == 1
    assert "HTTP 404" in caplog.text
    closed = "http://127.0.0.1:9/yunet.onnx"  # the discard port: nothing listens
    assert fetch_main(["yunet", "--url", closed, "--to", str(dest)]) == 1
    assert "unreachable" in caplog.text and "--from" in caplog.text
    assert not dest.exists()


@needs_model
def test_fetch_offline_copies_a_given_file(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    dest = tmp_path / "yunet.onnx"
    assert fetch_main(["yunet", "--from", str(SHARED_MODEL), "--to", str(dest)]) == 0
    assert dest.read_bytes() == SHARED_MODEL.read_bytes()
    assert fetch_main(["yunet", "--from", str(tmp_path / "absent"), "--to",
                       str(tmp_path / "b.onnx")]) == 2
    assert "no such file" in caplog.text


@needs_model
def test_fetch_writes_where_the_config_points(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("detector:\n  model: here/yunet.onnx\n")
    assert fetch_main(["yunet", "--config", str(config), "--from", str(SHARED_MODEL)]) == 0
    assert (tmp_path / "here" / "yunet.onnx").read_bytes() == SHARED_MODEL.read_bytes()


def test_a_tilted_face_s_crop_levelled_by_its_eyes_matches_the_upright_one() -> None:
    from edge.vision.faces import extract_faces

    frame = background((480, 640))
    frame[40:440, 120:520] = portrait(400)
    box = Box(220, 140, 200, 200)
    eyes = ((280.0, 220.0), (360.0, 220.0))  # level, in the upright frame
    upright = extract_faces(frame, [box], 0.15)[0].astype(float)
    turn = cv2.getRotationMatrix2D((320.0, 220.0), -20.0, 1.0)  # tilt the head 20 degrees
    tilted = cv2.warpAffine(frame, turn, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    moved = [tuple(turn @ np.array([x, y, 1.0])) for x, y in eyes]
    plain = extract_faces(tilted, [box], 0.15)[0].astype(float)
    level = extract_faces(tilted, [box], 0.15, eyes=[(moved[0], moved[1])])[0].astype(float)
    assert np.abs(level - upright).mean() < 0.5 * np.abs(plain - upright).mean()
