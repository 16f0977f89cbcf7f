"""Frame sources: OpenCV file, still images, the Picamera2 adapter on a fake module."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.sources import (
    ImageSource,
    OpenCVSource,
    Picamera2Source,
    SourceError,
    list_images,
    make_source,
)
from edge.config import SourceConfig
from tests import fake_picamera2
from tests.fixtures import ROOT

SAMPLE_VIDEO = ROOT / "models/sample/astronaut.mp4"
SAMPLE_IMAGE = ROOT / "models/sample/astronaut.jpg"


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (160, 120)) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for i in range(frames):
        img = np.full((h, w, 3), 20 * i % 255, np.uint8)
        cv2.putText(img, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        writer.write(img)
    writer.release()
    return path


def drain(source) -> list:
    source.open()
    frames = []
    try:
        while (f := source.read()) is not None:
            frames.append(f)
    finally:
        source.close()
    return frames


def test_video_file_reads_every_frame_then_ends(tmp_path: Path) -> None:
    src = OpenCVSource(str(write_video(tmp_path / "v.mp4", 12)))
    assert src.live is False
    frames = drain(src)
    assert [f.seq for f in frames] == list(range(12))
    f = frames[0]
    assert f.gray.shape == (120, 160) and f.gray.dtype == np.uint8
    assert f.image is not None and f.image.shape == (120, 160, 3)
    np.testing.assert_array_equal(f.gray, cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY))
    assert frames[1].mono >= frames[0].mono


def test_video_loop_restarts(tmp_path: Path) -> None:
    src = OpenCVSource(str(write_video(tmp_path / "v.mp4", 5)), loop=True)
    src.open()
    seqs = [src.read().seq for _ in range(12)]
    src.close()
    assert seqs == list(range(12))


def test_missing_file_and_bad_camera() -> None:
    with pytest.raises(SourceError, match="no such video file"):
        OpenCVSource("/nonexistent/clip.mp4").open()
    cam = OpenCVSource(97)  # no /dev/video97 here
    assert cam.live is True
    with pytest.raises(SourceError, match="cannot open video source 97"):
        cam.open()


def test_images_file_folder_glob(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg", "notes.txt"):
        p = tmp_path / name
        if name.endswith("txt"):
            p.write_text("x")
        else:
            cv2.imwrite(str(p), np.zeros((30, 40, 3), np.uint8))
    assert [p.name for p in list_images(str(tmp_path))] == ["a.jpg", "b.png"]
    assert [p.name for p in list_images(str(tmp_path / "*.png"))] == ["b.png"]
    frames = drain(ImageSource(str(tmp_path)))
    assert [Path(f.name).name for f in frames] == ["a.jpg", "b.png"]
    assert frames[0].gray.shape == (30, 40)
    with pytest.raises(SourceError, match="no images found"):
        ImageSource(str(tmp_path / "*.gif")).open()


def test_unreadable_images_are_skipped_naming_them(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((20, 30), 128, np.uint8))
    src = ImageSource(str(tmp_path))
    src.open()
    frame = src.read()
    assert frame is not None and frame.name == str(good) and frame.seq == 0
    assert src.read() is None and src.skipped == 1
    assert "bad.png: unreadable image" in caplog.text


def test_picamera2_adapter_on_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    photo = cv2.imread(str(SAMPLE_IMAGE))
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2.module([photo]))
    src = Picamera2Source(640, 480, 30, detect_width=320, keep_color=False)
    src.open()
    cam = fake_picamera2.FakePicamera2.instances[0]
    assert cam.config["main"]["format"] == "YUV420"
    assert cam.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    frame = src.read()
    assert frame.image is None
    assert frame.gray.shape == (480, 640)
    assert frame.small_gray.shape == (240, 320)  # the Y plane of lores, no conversion
    expected = cv2.cvtColor(cv2.resize(photo, (640, 480)), cv2.COLOR_BGR2YUV_I420)[:480]
    np.testing.assert_array_equal(frame.gray, expected)
    src.close()
    assert cam.closed and not cam.started


def test_picamera2_colour_and_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    photo = cv2.imread(str(SAMPLE_IMAGE))
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2.module([photo], fail_after=2))
    src = Picamera2Source(640, 480, 30, detect_width=300, keep_color=True)
    src.open()
    f = src.read()
    assert f.image.shape == (480, 640, 3) and f.gray.shape == (480, 640)
    assert f.small_gray.shape == (224, 300)  # even, for YUV420
    src.read()
    with pytest.raises(SourceError, match="stopped delivering"):
        src.read()


def test_picamera2_absent_explains_apt_and_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail
    with pytest.raises(SourceError) as info:
        Picamera2Source().open()
    msg = str(info.value)
    assert "apt install python3-picamera2" in msg and "--system-site-packages" in msg


def test_auto_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    assert isinstance(make_source(SourceConfig(kind="auto", uri=0)), OpenCVSource)
    photo = cv2.imread(str(SAMPLE_IMAGE))
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2.module([photo]))
    assert isinstance(make_source(SourceConfig(kind="auto", uri=0)), Picamera2Source)
    assert isinstance(make_source(SourceConfig(uri=str(SAMPLE_VIDEO))), OpenCVSource)
    assert isinstance(make_source(SourceConfig(uri=str(SAMPLE_IMAGE))), ImageSource)
    assert isinstance(make_source(SourceConfig(uri=str(tmp_path))), ImageSource)
    assert isinstance(make_source(SourceConfig(uri="rtsp://cam.local/stream")), OpenCVSource)
    assert make_source(SourceConfig(kind="opencv", uri="2")).uri == 2


def test_with_the_web_page_a_video_file_plays_at_its_own_rate_and_loops() -> None:
    from edge.assemble import build_source, demo_playback, playback_rate
    from edge.capture.sources import video_fps
    from edge.config import load

    root = Path(__file__).resolve().parents[1]
    batch = load(root / "config.yaml")
    assert not demo_playback(batch) and playback_rate(batch) is None  # flat out, once
    demo = load(root / "config.yaml", {"web.enabled": True})
    fps = video_fps(str(demo.source.uri))
    assert 10 <= fps <= 60 and playback_rate(demo) == fps
    source = build_source(demo)
    source.open()
    try:
        frames = [source.read() for _ in range(200)]  # more than the clip holds
    finally:
        source.close()
    assert all(f is not None for f in frames)
    assert not demo_playback(load(root / "config.yaml", {"web.enabled": True,
                                                         "source.pace": "off"}))
    assert playback_rate(load(root / "config.yaml", {"source.pace": "on"})) == fps


def test_opencv_warns_once_about_a_missing_camera_not_on_every_retry() -> None:
    import subprocess

    # OpenCV prints from C++ to the process's stderr: seen only from outside it.
    script = ("from edge.capture.sources import OpenCVSource, SourceError\n"
              "s = OpenCVSource(99)\n"
              "for _ in range(4):\n"
              "    try:\n        s.open()\n    except SourceError:\n        pass\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("/dev/video99") <= 1, done.stderr
