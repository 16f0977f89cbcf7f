"""python -m edge and python -m edge.predict end to end, in subprocesses, on the sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from edge.events import EVENT_SCHEMA
from tests.fixtures import ROOT

MODEL = "emotion_int8.tflite"
SAMPLE_VIDEO = ROOT / "models/sample/astronaut.mp4"
SAMPLE_IMAGE = ROOT / "models/sample/astronaut.jpg"


def run_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sample_run_writes_valid_events_and_stats(device_models: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pipeline:\n  stats_every_s: 0.5\ndevice: test-cam\n")
    events = tmp_path / "events.jsonl"
    video = tmp_path / "annotated.mp4"
    r = run_edge("--config", str(cfg), "--source", str(SAMPLE_VIDEO), "--model",
                 str(device_models / MODEL), "--sink", "log", "--events", str(events),
                 "--annotate-video", str(video))
    assert r.returncode == 0, r.stderr
    assert "fps" in r.stderr and "stopped: 90 frames" in r.stderr
    evs = read_events(events)
    for e in evs:
        jsonschema.validate(e, EVENT_SCHEMA)
    assert evs[0]["type"] == "appeared" and evs[-1]["type"] == "left"
    assert {e["face"] for e in evs} == {1}  # one face, one id through the whole clip
    assert all(e["device"] == "test-cam" for e in evs)
    assert [e["frame"] for e in evs] == sorted(e["frame"] for e in evs)
    import cv2

    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 90


def test_stdout_sink_and_max_frames(device_models: Path, tmp_path: Path) -> None:
    r = run_edge("--source", str(SAMPLE_VIDEO), "--model", str(device_models / MODEL),
                 "--sink", "stdout", "--max-frames", "10")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["appeared", "left"]
    assert lines[-1]["frame"] == 9


def test_a_folder_named_like_a_video_is_refused_at_start(device_models: Path,
                                                         tmp_path: Path) -> None:
    # (A failure at run time exits 1: tests/test_hardening.py, a video broken mid-stream.)
    (tmp_path / "x.mp4").mkdir()
    r = run_edge("--source", str(SAMPLE_VIDEO), "--model", str(device_models / MODEL),
                 "--events", str(tmp_path / "e.jsonl"),
                 "--annotate-video", str(tmp_path / "x.mp4"))
    assert r.returncode == 2
    assert "pipeline.annotate_video" in r.stderr and "not a regular file" in r.stderr


@pytest.mark.parametrize(("name", "message"), [("annotated", "name a video file ending in"),
                                               ("file/x.mp4", "cannot write there")])
def test_an_unusable_annotated_video_path_exits_2_at_start(
        device_models: Path, tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "file").write_text("")
    r = run_edge("--source", str(SAMPLE_VIDEO), "--model", str(device_models / MODEL),
                 "--events", str(tmp_path / "e.jsonl"),
                 "--annotate-video", str(tmp_path / name))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "e.jsonl").exists() or not read_events(tmp_path / "e.jsonl")


def test_the_annotated_video_keeps_the_source_frame_rate(device_models: Path,
                                                         tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "slow.mp4"
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    writer = None
    for _ in range(20):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (w, h))
        writer.write(frame)
    writer.release()
    cap.release()
    out = tmp_path / "annotated.mp4"
    r = run_edge("--source", str(clip), "--model", str(device_models / MODEL), "--events",
                 str(tmp_path / "e.jsonl"), "--annotate-video", str(out))
    assert r.returncode == 0, r.stderr
    written = cv2.VideoCapture(str(out))
    assert written.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0)
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    written.release()


def test_sigterm_stops_within_2s_with_events_flushed(device_models: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"source:\n  uri: {SAMPLE_VIDEO}\n  loop: true\n")
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(cfg), "--model",
         str(device_models / MODEL), "--events", str(events)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (events.exists() and events.stat().st_size):
            time.sleep(0.1)
        assert events.stat().st_size > 0, "no event before the deadline"
        # The clip loops, so the first event means frames are flowing: stop mid-stream.
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate()
    assert code == 0, err
    assert elapsed < 2.0
    assert "received SIGTERM" in err
    evs = read_events(events)
    assert evs[-1]["type"] == "left"  # the flush at stop reached the log


@pytest.mark.parametrize("as_json", [True, False])
def test_predict_on_a_photograph(device_models: Path, tmp_path: Path, as_json: bool) -> None:
    args = [sys.executable, "-m", "edge.predict", str(SAMPLE_IMAGE), "--model",
            str(device_models / MODEL), "--annotate", str(tmp_path / "a.jpg"),
            "--chart", str(tmp_path / "c.png")]
    r = subprocess.run([*args, *(["--json"] if as_json else [])], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if as_json:
        out = json.loads(r.stdout)
        assert len(out["faces"]) == 1
        face = out["faces"][0]
        assert sum(face["probs"].values()) == pytest.approx(1.0, abs=0.02)
        assert face["emotion"] == max(face["probs"], key=face["probs"].get)
    else:
        assert "1 face(s)" in r.stdout
    assert (tmp_path / "a.jpg").stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0


def test_predict_skips_unreadable_images_and_exits_2_when_none_is_readable(
        device_models: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    huge = tmp_path / "huge.png"  # a header claiming 30000x30000 pixels
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"
                     + (30000).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00")
    args = [sys.executable, "-m", "edge.predict", "--model", str(device_models / MODEL)]
    r = subprocess.run([*args, str(bad), str(huge), str(SAMPLE_IMAGE)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "bad.jpg: unreadable image" in r.stderr
    assert "huge.png: 30000x30000 pixels is above the limit" in r.stderr
    assert "2 of 3 image(s) could not be read" in r.stderr
    assert "astronaut.jpg: 1 face(s)" in r.stdout  # the good image is still processed
    r = subprocess.run([*args, str(bad), str(huge)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_predict_interrupted_exits_130_quietly(device_models: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from edge import predict

    def interrupted(*_: object) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "predict_image", interrupted)
    assert predict.main([str(SAMPLE_IMAGE), "--model", str(device_models / MODEL)]) == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["corrupt.mp4", "corrupt.jpg"])
def test_a_corrupt_input_file_exits_2_at_start(device_models: Path, tmp_path: Path,
                                               name: str) -> None:
    corrupt = tmp_path / name
    corrupt.write_bytes(b"\x00garbage" * 100)
    r = run_edge("--source", str(corrupt), "--model", str(device_models / MODEL),
                 "--events", str(tmp_path / "e.jsonl"))
    assert r.returncode == 2, r.stderr
    assert f"source.uri: {corrupt}" in r.stderr and "Traceback" not in r.stderr


def test_an_image_folder_skips_bad_files_and_counts_them(device_models: Path,
                                                         tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "c.jpg", "e.jpg"):
        shutil.copy(SAMPLE_IMAGE, folder / name)
    for name in ("b.jpg", "d.png"):
        (folder / name).write_bytes(b"not an image")
    events = tmp_path / "e.jsonl"
    r = run_edge("--source", str(folder), "--model", str(device_models / MODEL),
                 "--events", str(events), "--sink", "log")
    assert r.returncode == 0, r.stderr
    assert "b.jpg: unreadable image" in r.stderr and "(skipped; 2 so far)" in r.stderr
    frames = {e["frame"] for e in read_events(events)}
    assert max(frames) == 2  # three good images, numbered 0..2


def test_notify_protocol(tmp_path: Path, device_models: Path) -> None:
    import socket

    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pipeline:\n  stats_every_s: 0.3\n")
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(cfg), "--source", str(SAMPLE_VIDEO),
         "--model", str(device_models / MODEL), "--events",
         str(tmp_path / "e.jsonl")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    messages = []
    try:
        while True:
            msg = sock.recv(4096).decode()
            messages.append(msg)
            if "STOPPING=1" in msg:
                break
    finally:
        proc.wait(timeout=30)
        sock.close()
    assert messages[0].startswith("READY=1")
    assert any(m == "WATCHDOG=1" for m in messages)
    assert any(m.startswith("STATUS=fps") for m in messages)
    assert proc.returncode == 0
