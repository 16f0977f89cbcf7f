"""Inputs and stops that must not crash, hang or lose events silently: hostile configs, a
video that breaks mid-stream, MQTT settings no broker delivers from, a network loop that
dies, a full spool, a web server stopped with streams open, a run aborted mid-read."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import struct
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import ConfigError, MqttSinkConfig, build, load
from tests.fixtures import ROOT, wait_until
from tests.test_edge_cli import run_edge

# -- configs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"source.uri": -1}, "source.uri: a camera index must be in 0..63"),
    ({"source.uri": ""}, "source.uri: must not be empty"),
    ({"sinks.mqtt.topic_prefix": "$SYS"}, "does not start with '$'"),
    ({"sinks.mqtt.topic_prefix": "a/+/b"}, "without wildcards"),
    ({"sinks.mqtt.homeassistant_discovery": True, "sinks.mqtt.discovery_prefix": "#"},
     "sinks.mqtt.discovery_prefix: must be a non-empty topic"),
    ({"sinks.mqtt.host": "a..b"}, "sinks.mqtt.host: 'a..b' is not a host name"),
])
def test_values_that_crash_or_lose_events_later_are_refused(overrides: dict,
                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("+", r"\+")):
        load(None, overrides)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "broker.local", "mqtt_1.lan"])
def test_ordinary_broker_names_are_accepted(host: str) -> None:
    assert load(None, {"sinks.mqtt.host": host}).sinks.mqtt.host == host


@pytest.mark.parametrize("value", ['"ten"', "[1, 2]", ".nan", "-5"])
def test_the_file_is_validated_as_written_even_when_a_flag_overrides_the_key(
        tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"pipeline:\n  max_frames: {value}\n")
    with pytest.raises(ConfigError, match=r"pipeline\.max_frames"):
        load(cfg, {"pipeline.max_frames": 10})


def test_a_config_that_is_not_a_regular_file_or_too_big_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would block until a writer came
    with pytest.raises(ConfigError, match="not a regular file"):
        load(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load(big)


@pytest.mark.parametrize("text", ["", "source:\n", "sinks:\n  stdout:\n    enabled: true\n"])
def test_a_config_without_a_source_says_it_uses_camera_0(
        tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with caplog.at_level(logging.WARNING, logger="edge.config.loader"):
        assert load(cfg).source.uri == 0
        assert load(cfg, {"source.uri": "clip.mp4"}).source.uri == "clip.mp4"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no source given; using camera 0" in said[0]


def test_an_empty_source_on_the_command_line_exits_2() -> None:
    r = run_edge("--source", "", "--max-frames", "1")
    assert r.returncode == 2, r.stderr
    assert "source.uri: must not be empty" in r.stderr and "Traceback" not in r.stderr


# -- a video that breaks mid-stream ---------------------------------------------------------


def _truncated_video(folder: Path) -> Path:
    """An MJPG AVI of 60 frames cut in half: its header still says 60."""
    path = folder / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for i in range(60):
        writer.write(np.full((120, 160, 3), 4 * i, np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def test_a_video_that_breaks_mid_stream_exits_1(tmp_path: Path) -> None:
    video = _truncated_video(tmp_path)
    r = run_edge("--source", str(video), "--sink", "stdout")
    assert r.returncode == 1, r.stderr
    assert "of the 60 frames its header gives (a truncated or corrupt file)" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_complete_video_still_ends_with_exit_0(tmp_path: Path) -> None:
    r = run_edge("--source", str(ROOT / "models/sample/astronaut.mp4"), "--sink", "stdout")
    assert r.returncode == 0, r.stderr
    assert "stopped: 90 frames" in r.stderr


# -- MQTT -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_broker_names_the_one_cause_seen() -> None:
    from edge.sinks.broker import connect_failure

    port = _free_port()
    cfg = build(MqttSinkConfig, {"host": "127.0.0.1", "port": port}, "sinks.mqtt")
    said = connect_failure(cfg)
    assert said.startswith(f"connection refused: nothing listens on port {port}")
    assert "TLS" not in said


def test_a_full_spool_says_so_once_and_counts_every_discard(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edge.model import ModelCard
    from edge.stats import Stats
    from edge.web.live import LiveState
    from edge.web.metrics import DeviceCollector
    from tests.test_mqtt import event, make_sink

    sink = make_sink(_free_port(), tmp_path / "state", spool_max_events=5)  # no broker
    try:
        with caplog.at_level(logging.WARNING, logger="edge.sinks.mqtt"):
            for i in range(50):
                sink.write(event(i))
        full = [r for r in caplog.records if "spool full" in r.getMessage()]
        assert len(full) == 1 and sink.discarded == 45
        stats = Stats()
        stats.publish("mqtt", sink.figures)  # as build_device does for the page
        card = ModelCard.load(ROOT / "models/emotion_ferplus_int8.json")
        collector = DeviceCollector(stats, LiveState(card.labels, 10, False), card)
        metrics = {m.name: m for m in collector.collect()}
        assert metrics["emotion_edge_mqtt_discarded_events"].samples[0].value == 45
        assert metrics["emotion_edge_mqtt_spool_events"].samples[0].value == 5
    finally:
        sink.close()


def test_a_network_loop_that_dies_is_restarted_and_delivers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.mqtt_broker import Broker, Subscriber, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    from edge.sinks.mqtt import MqttSink
    from tests.test_mqtt import event, make_sink

    real = MqttSink._on_connect
    calls = {"n": 0}

    def fails_once(self: MqttSink, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # an error inside paho's loop: the loop must not end for good
            raise RuntimeError("boom in a callback")
        real(self, *args)

    monkeypatch.setattr(MqttSink, "_on_connect", fails_once)
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, "emotion-edge/+/event")
    try:
        with caplog.at_level(logging.INFO, logger="edge.sinks.mqtt"):
            sink = make_sink(broker.port, tmp_path / "state", reconnect={"initial_s": 0.1,
                                                                         "max_s": 0.2})
            for i in range(10):
                sink.write(event(i))
            assert sub.wait_for(lambda: {e["id"] for e in sub.events()}
                                >= {event(i).id for i in range(10)}, 60)
            sink.close()
        failed = [r for r in caplog.records if "network loop failed" in r.getMessage()]
        assert len(failed) == 1 and "boom in a callback" in failed[0].getMessage()
    finally:
        sub.close()
        broker.stop()


# -- stopping -------------------------------------------------------------------------------


def test_the_web_server_stops_with_streams_open_and_frees_its_port(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("waitress")
    pytest.importorskip("flask")
    from tests.test_web import start

    device = start(tmp_path)
    device.pipeline.stop()
    device.pipeline.join()
    server = device.web
    streams = [urllib.request.urlopen(server.url + "api/events/stream", timeout=30)
               for _ in range(3)]
    try:
        with caplog.at_level(logging.INFO):
            device.close()
        assert not server._thread.is_alive()
        for s in streams:  # each stream ends instead of hanging
            with contextlib.suppress(http.client.IncompleteRead):
                s.read()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        with socket.socket() as s:  # the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", server.port))
    finally:
        for s in streams:
            s.close()


def test_an_aborted_run_never_closes_the_source_under_a_read(
        caplog: pytest.LogCaptureFixture) -> None:
    from tests.fakes import FakeClassifier, FakeSource, make

    release = threading.Event()

    class SlowRead(FakeSource):
        closed_during_read = False
        reading = False

        def read(self):  # a decode that takes its time (a loaded machine, a slow stream)
            if self.n >= 3:
                self.reading = True
                release.wait(60)
                self.reading = False
            return super().read()

        def close(self) -> None:
            self.closed_during_read = self.closed_during_read or self.reading
            super().close()

    src = SlowRead(None, live=True)
    p, _sink, _ = make(src, [FakeClassifier()])
    p.start()
    assert wait_until(lambda: src.reading)
    with caplog.at_level(logging.WARNING):
        p.join(timeout=0.0, abort_grace=0.1)  # the read goes on past the abort
    assert "the source is left open" in caplog.text and not src.closed_during_read
    release.set()
    capture = next(t for t in p._threads if t.name == "capture")
    assert wait_until(lambda: not capture.is_alive())  # and it does stop after the read


def test_clients_that_send_their_request_slowly_are_cut_and_health_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("waitress")
    pytest.importorskip("flask")
    import edge.web.admission as web_admission
    from tests.test_web import get, start

    monkeypatch.setattr(web_admission, "REQUEST_TIMEOUT_S", 1.0)
    device = start(tmp_path)
    slow = []
    try:
        for _ in range(30):  # headers begun, never finished (a byte now and then)
            s = socket.create_connection(("127.0.0.1", device.web.port), timeout=30)
            s.sendall(b"GET /api/state HTTP/1.1\r\nHo")
            slow.append(s)
        assert get(device.web.url + "api/health")[0] in (200, 503)
        assert get(device.web.url + "metrics")[0] == 200

        def cut(s: socket.socket) -> bool:
            s.settimeout(0.5)
            try:
                s.sendall(b"s")
                return s.recv(1) == b""
            except TimeoutError:
                return False  # still open
            except OSError:
                return True

        assert wait_until(lambda: all(cut(s) for s in slow), timeout=60)
    finally:
        for s in slow:
            s.close()
        device.pipeline.stop()
        device.pipeline.join()
        device.close()


def test_predict_names_a_missing_file_and_says_where_its_outputs_went(tmp_path: Path) -> None:
    import subprocess
    import sys

    def predict(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edge.predict", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    r = predict(str(tmp_path / "nope.png"))
    assert r.returncode == 2
    assert "nope.png: no such file or folder" in r.stderr and "no images found" not in r.stderr
    out = tmp_path / "a.jpg"
    r = predict(str(ROOT / "models/sample/astronaut.jpg"), "--annotate", str(out))
    assert r.returncode == 0, r.stderr
    assert f"annotated image written to {out}" in r.stderr and out.is_file()


# -- a third round: file names, full disks, colliding outputs --------------------------------

NOT_UTF8 = os.fsdecode(b"caf\xe9")


def _predict(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edge.predict", *args], cwd=ROOT,
                          capture_output=True, timeout=120)


def test_file_names_that_are_not_utf8_never_reach_opencv(tmp_path: Path) -> None:
    photo = tmp_path / f"{NOT_UTF8}.jpg"
    photo.write_bytes((ROOT / "models/sample/astronaut.jpg").read_bytes())
    out = tmp_path / f"{NOT_UTF8}-out.jpg"
    chart = tmp_path / "chart.png"  # titled with the photo's name, drawn by OpenCV
    r = _predict(str(photo), "--annotate", str(out), "--chart", str(chart))
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.stat().st_size > 1000 and chart.is_file()
    video = tmp_path / f"{NOT_UTF8}.mp4"
    video.write_bytes((ROOT / "models/sample/astronaut.mp4").read_bytes())
    r = run_edge("--source", str(video), "--sink", "stdout", "--max-frames", "3")
    assert r.returncode == 2, r.stderr  # refused in one line, not a SIGSEGV
    assert "not a UTF-8 file name" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("args", "code", "said"), [
    (["--annotate", "out.xyz"], 2, b"end the name with one"),
    (["--annotate", "noext"], 2, b"end the name with one"),
    (["--chart", "/dev/full"], 2, b"end the name with one"),
])
def test_predict_refuses_outputs_it_cannot_write_before_it_starts(
        args: list[str], code: int, said: bytes) -> None:
    r = _predict(str(ROOT / "models/sample/astronaut.jpg"), *args)
    assert r.returncode == code and said in r.stderr and b"Traceback" not in r.stderr


def test_predict_wants_a_folder_for_several_images(tmp_path: Path) -> None:
    existing = tmp_path / "taken.jpg"
    existing.write_bytes(b"x")
    other = tmp_path / "other.jpg"
    other.write_bytes((ROOT / "models/sample/astronaut.jpg").read_bytes())
    r = _predict(str(ROOT / "models/sample/astronaut.jpg"), str(other), "--annotate",
                 str(existing))
    assert r.returncode == 2 and b"several images need a folder" in r.stderr


def test_a_full_disk_for_the_event_log_exits_1_in_one_line(tmp_path: Path) -> None:
    import resource
    import signal
    import subprocess
    import sys

    def small_files() -> None:  # writes past 200 bytes fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    events = tmp_path / "events.jsonl"
    r = subprocess.run([sys.executable, "-m", "edge", "--source",
                        str(ROOT / "models/sample/astronaut.mp4"), "--events", str(events),
                        "--sink", "log", "--max-frames", "300"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, preexec_fn=small_files)
    assert r.returncode == 1, r.stderr
    assert "sink log could not write everything" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("key", ["sinks.log.path", "model.card", "web.auth_token_file",
                                 "sinks.mqtt.password_file"])
def test_a_device_or_a_pipe_where_a_file_belongs_is_refused(tmp_path: Path, key: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for special in ("/dev/zero", str(fifo)):
        with pytest.raises(ConfigError, match="not a regular file"):
            load(None, {key: special})


@pytest.mark.parametrize("text", ["device: 2026-13-45", "device: !!bool maybe",
                                  "device: !!int abc", "device: !!timestamp x",
                                  "device: " + "9" * 4400, "source:\n  uri: [0\n"])
def test_yaml_a_loader_cannot_read_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert "\n" not in str(exc.value) and "c.yaml" in str(exc.value)
    if "[" in text:
        assert "line 4, column 1" in str(exc.value)


def test_prepare_never_writes_into_its_photos_and_keeps_every_face(tmp_path: Path) -> None:
    from train.prepare import main as prepare_main

    photos = tmp_path / "photos" / "happy"
    photos.mkdir(parents=True)
    face = cv2.imread(str(ROOT / "models/sample/astronaut.jpg"))
    for name in ("a.jpg", "a.png", "A.JPG"):
        cv2.imwrite(str(photos / name), face) if name != "A.JPG" else \
            (photos / name).write_bytes((photos / "a.jpg").read_bytes())
    assert prepare_main([str(tmp_path / "photos"), str(tmp_path / "photos")]) == 2
    assert prepare_main([str(tmp_path / "photos"), str(tmp_path / "photos" / "out")]) == 2
    assert prepare_main([str(tmp_path / "photos"), str(tmp_path / "faces")]) == 0
    written = sorted(p.name.lower() for p in (tmp_path / "faces" / "happy").iterdir())
    assert len(written) == 3 and len(set(written)) == 3


def test_training_on_a_device_install_says_which_extra_in_one_line(
        fer_csv: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import importlib.util

    from convert.quantize import main as quantize_main
    from train.__main__ import main as train_main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    assert train_main(["--data", str(fer_csv)]) == 2
    assert quantize_main(["--model", str(ROOT / "models/emotion_ferplus.keras"), "--data",
                          str(fer_csv)]) == 2
    assert caplog.text.count("pip install -e '.[train]'") == 2


def test_a_keras_model_given_to_the_device_says_to_convert_it() -> None:
    with pytest.raises(ConfigError, match=r"convert it with python -m convert\.quantize"):
        load(None, {"model.path": "models/emotion_ferplus.keras"})


def test_a_still_image_as_the_source_points_to_predict() -> None:
    r = run_edge("--source", str(ROOT / "models/sample/astronaut.jpg"), "--sink", "stdout")
    assert r.returncode == 0
    assert "is a still image" in r.stderr and "python -m edge.predict" in r.stderr
    assert "INFO: Created TensorFlow Lite" not in r.stderr  # the runtime's notice, held back


def _sof2(width: int, height: int, components: int) -> bytes:
    body = struct.pack(">BHHB", 8, height, width, components) + b"\x01\x11\x00" * components
    return b"\xff\xc2" + struct.pack(">H", len(body) + 2) + body


def test_a_jpeg_of_thousands_of_scans_is_refused_at_once() -> None:
    from edge.capture.image_files import ImageError, decode_image

    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x12\x34"
    bomb = b"\xff\xd8" + _sof2(64, 64, 1) + sos * 20_000 + b"\xff\xd9"
    with pytest.raises(ImageError, match="scans"):
        decode_image(bomb, "scans.jpg")


def test_a_small_jpeg_claiming_50_mp_in_four_components_is_refused_by_its_budget() -> None:
    from edge.capture.image_files import ImageError, decode_image

    bomb = b"\xff\xd8" + _sof2(7000, 7000, 4) + b"\xff\xd9"
    with pytest.raises(ImageError, match="would take about") as exc:
        decode_image(bomb, "cmyk.jpg")
    assert exc.value.too_large


def test_a_pgm_hiding_its_size_behind_a_comment_ended_by_cr_is_read_as_opencv_does() -> None:
    from edge.capture.image_files import ImageError, decode_image, image_size

    bomb = b"P5 #\r10000 10000 255\n3 3 255\n" + b"\0" * 9
    assert image_size(bomb) == (10000, 10000)
    with pytest.raises(ImageError, match="above the limit"):
        decode_image(bomb, "x.pgm")


def test_a_large_progressive_photo_is_decoded_reduced_and_still_has_its_face() -> None:
    from edge.capture.image_files import decode_image

    photo = cv2.imread(str(ROOT / "models/sample/astronaut.jpg"))
    big = cv2.resize(photo, (6000, 4000))
    _, data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    image = decode_image(data.tobytes(), "phone.jpg")
    assert image.shape == (2000, 3000, 3)  # 24 MP decoded at half size
    from edge.assemble import build_detector

    assert build_detector(load(None, {})).detect(
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
