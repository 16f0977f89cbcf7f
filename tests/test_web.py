"""The web page, API and /metrics: real HTTP against the real pipeline on the bundled clip."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")
pytest.importorskip("prometheus_client")

from edge.assemble import Device, build_device
from edge.config import load
from edge.preprocessing import EMOTIONS
from tests.fixtures import ROOT, wait_until

CLIP = ROOT / "models/sample/astronaut.mp4"
PHOTO = ROOT / "models/sample/astronaut.jpg"


def start(tmp_path: Path, **web: object) -> Device:
    # Paced by the pipeline, not played as a demo: the page treats it as a camera.
    overrides = {"source.uri": str(CLIP), "source.loop": True, "source.realtime": True,
                 "source.pace": "off",
                 "sinks.log.path": str(tmp_path / "events.jsonl"), "web.enabled": True,
                 "web.port": 0, "pipeline.workers": 1}
    overrides.update({f"web.{k}": v for k, v in web.items()})
    device = build_device(load(None, overrides))
    device.pipeline.start()
    return device


@pytest.fixture()
def device(tmp_path: Path) -> Iterator[Device]:
    d = start(tmp_path, upload_max_bytes=200_000)
    yield d
    d.pipeline.stop()
    d.pipeline.join()
    d.close()


def get(url: str, headers: dict | None = None, data: bytes | None = None,
        method: str | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, **kw: object) -> tuple[int, dict]:
    code, _, body = get(url, **kw)  # type: ignore[arg-type]
    return code, json.loads(body)


def multipart(field: str, name: str, payload: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_state_events_and_health_follow_the_clip(device: Device) -> None:
    url = device.web.url
    assert wait_until(lambda: get_json(url + "api/state")[1]["faces"], timeout=60)
    code, state = get_json(url + "api/state")
    assert code == 200 and state["size"] == [640, 480] and not state["preview"]
    face = state["faces"][0]
    assert face["emotion"] == "happy" and set(face["probs"]) >= {"happy", "sad"}
    assert state["model"]["id"].startswith("emotion_ferplus_int8-")
    assert state["model"]["accuracy_ferplus"] > 0.5  # from the card
    assert state["status"]["source"] == "ok" and state["status"]["frames"] > 0
    assert wait_until(lambda: get_json(url + "api/events")[1]["events"], timeout=60)
    events = get_json(url + "api/events")[1]["events"]
    assert events[0]["type"] == "appeared"
    first = events[0]["id"]
    later = get_json(url + f"api/events?since={first}")[1]["events"]
    assert first not in [e["id"] for e in later]
    assert get_json(url + "api/events?since=2000-01-01T00:00:00Z")[1]["events"] == \
        get_json(url + "api/events")[1]["events"]
    assert get_json(url + "api/health") == (200, {"ok": True, "source": "ok"})
    code, body = get_json(url + "api/events?since=garbage")
    assert code == 400 and "since" in body["error"]


def test_the_event_stream_starts_with_kept_events_and_resumes_after_an_id(
        device: Device) -> None:
    url = device.web.url
    assert wait_until(lambda: get_json(url + "api/events")[1]["events"], timeout=60)
    first = get_json(url + "api/events")[1]["events"][0]["id"]

    def ids(query: str) -> list[str]:
        seen: list[str] = []
        with urllib.request.urlopen(url + "api/events/stream" + query, timeout=30) as r:
            for raw in r:
                line = raw.decode().strip()
                if line.startswith("id: "):
                    seen.append(line[4:])
                if seen or line.startswith(": keep-alive"):
                    break
        return seen

    assert ids("") == [first]  # an event from before the page connected is not missed
    request = urllib.request.Request(url + "api/events/stream",
                                     headers={"Last-Event-ID": first})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.readline().decode().startswith(": connected")


def test_metrics_parse_and_move_while_the_clip_plays(device: Device) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def frames() -> float:
        code, headers, body = get(device.web.url + "metrics")
        assert code == 200 and headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert {"emotion_edge_frames", "emotion_edge_events", "emotion_edge_stage_seconds",
                "emotion_edge_frames_dropped", "emotion_edge_model_info",
                "emotion_edge_faces_in_view", "emotion_edge_faces_by_emotion"} <= set(families)
        by_emotion = {s.labels["emotion"]: s.value
                      for s in families["emotion_edge_faces_by_emotion"].samples}
        assert set(by_emotion) == set(EMOTIONS) and all(n >= 0 for n in by_emotion.values())
        return families["emotion_edge_frames"].samples[0].value

    first = frames()
    assert wait_until(lambda: frames() > first + 10, timeout=60)


def test_photo_upload_labels_the_astronaut_and_refuses_bad_uploads(device: Device) -> None:
    url = device.web.url + "api/predict"
    body, headers = multipart("photo", "astronaut.jpg", PHOTO.read_bytes())
    code, result = get_json(url, data=body, headers=headers)
    assert code == 200 and [f["emotion"] for f in result["faces"]] == ["happy"]
    body, headers = multipart("photo", "notes.txt", b"just text, not a picture")
    code, result = get_json(url, data=body, headers=headers)
    assert code == 400 and "not an image" in result["error"]
    body, headers = multipart("photo", "big.jpg", b"\xff" * 300_000)
    code, result = get_json(url, data=body, headers=headers)
    assert code == 413 and "upload too large" in result["error"]
    code, result = get_json(url, data=b"", headers={"Content-Type": "image/jpeg"},
                            method="POST")
    assert code == 400 and "no photo" in result["error"]


def test_a_recorded_clip_played_on_the_page_shows_its_video(tmp_path: Path) -> None:
    cfg = load(None, {"source.uri": str(CLIP), "web.enabled": True, "web.port": 0,
                      "sinks.log.path": str(tmp_path / "e.jsonl")})
    shown = build_device(cfg)
    try:
        shown.pipeline.start()
        code, state = get_json(shown.web.url + "api/state")
        assert code == 200 and state["preview"]  # a file: shown; a camera: private
    finally:
        shown.pipeline.stop()
        shown.pipeline.join()
        shown.close()


def test_no_pixels_without_preview_and_a_live_view_with_it(device: Device,
                                                           tmp_path: Path) -> None:
    code, result = get_json(device.web.url + "stream.mjpg")
    assert code == 404 and "web.preview: false" in result["error"]
    with_preview = start(tmp_path / "p", preview=True)
    try:
        with urllib.request.urlopen(with_preview.web.url + "stream.mjpg", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            chunk = b""
            while chunk.count(b"\xff\xd8") < 2:  # the blank frame, then a real one
                chunk += r.read1(65536)
    finally:
        with_preview.pipeline.stop()
        with_preview.pipeline.join()
        with_preview.close()


def test_the_token_guards_every_route_but_health(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_WEB_TOKEN", "s3cret-token")
    d = start(tmp_path, auth_token_env="EDGE_WEB_TOKEN")
    try:
        url = d.web.url
        assert get(url + "api/state")[0] == 401
        assert get(url + "api/state", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert get(url + "metrics")[0] == 401 and get(url)[0] == 401
        ok = get(url + "api/state", headers={"Authorization": "Bearer s3cret-token"})
        assert ok[0] == 200
        code, headers, _ = get(url + "?token=s3cret-token")
        assert code == 200 and "HttpOnly" in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        assert get(url + "api/state", headers={"Cookie": cookie})[0] == 200
        assert get(url + "api/health")[0] == 200  # for health checks, no data in it
        # A stale tab polling without the token is told 401 and blocks nobody; guessing
        # is blocked, and the right token still passes.
        for _ in range(15):
            assert get(url + "api/state")[0] == 401
        assert ok[0] == get(url + "api/state",
                            headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        for _ in range(10):
            get(url + "api/state", headers={"Authorization": "Bearer guess"})
        assert get(url + "api/state", headers={"Authorization": "Bearer guess"})[0] == 429
        assert get(url + "api/state", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    finally:
        d.pipeline.stop()
        d.pipeline.join()
        d.close()


def test_a_non_loopback_bind_without_a_token_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("web:\n  bind: 0.0.0.0\n")
    result = subprocess.run([sys.executable, "-m", "edge", "--config", str(cfg), "--web"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "web.bind: 0.0.0.0 is reachable from other machines" in lines[0]


def _jpeg_claiming(width: int, height: int, fill: int = 1, metadata: int = 0) -> bytes:
    """A tiny JPEG whose frame header claims ``width`` x ``height`` pixels, behind
    ``fill`` 0xFF fill bytes and an APP1 segment of ``metadata`` bytes."""
    app1 = (b"\xff\xe1" + (metadata + 2).to_bytes(2, "big") + b"\0" * metadata
            if metadata else b"")
    sof = (b"\xff" * fill + b"\xc0\x00\x0b\x08" + height.to_bytes(2, "big")
           + width.to_bytes(2, "big") + b"\x01\x01\x11\x00")
    return b"\xff\xd8" + app1 + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\0" * 300


def test_image_bombs_are_refused_before_decoding(device: Device) -> None:
    import struct
    import time
    import zlib

    url = device.web.url + "api/predict"
    png_header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(
        ">IIBBBBB", 64, 64, 8, 0, 0, 0, 0) + b"\0\0\0\0"
    bombs = {
        "fill byte": _jpeg_claiming(60000, 60000, fill=2),
        "64 KiB of metadata first": _jpeg_claiming(60000, 60000, metadata=65000),
        "a PNG chunk claiming 4 GB": png_header + struct.pack(">I", 0xFFFF0000) + b"IDAT"
                                     + zlib.compress(b"\0" * 1000),
        "TIFF": b"II*\x00\x08\x00\x00\x00" + b"\0" * 900,
    }
    for name, payload in bombs.items():
        started = time.monotonic()
        code, result = get_json(url, data=payload, headers={"Content-Type": "image/jpeg"},
                                method="POST")
        assert code in (400, 413), (name, code, result)
        assert time.monotonic() - started < 5, name  # refused, not decoded
    # A photo sent as curl --data-binary sends it (a form content type) is read as is.
    code, result = get_json(url, data=PHOTO.read_bytes(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"},
                            method="POST")
    assert code == 200 and len(result["faces"]) == 1


def test_foreign_hosts_and_cross_site_posts_are_refused(device: Device) -> None:
    url = device.web.url
    assert get(url + "api/state", headers={"Host": "attacker.example"})[0] == 400
    assert get(url + "api/state", headers={"Host": f"localhost:{device.web.port}"})[0] == 200
    code, headers, _ = get(url)
    assert code == 200 and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    body, form = multipart("photo", "astronaut.jpg", PHOTO.read_bytes())
    code, result = get_json(url + "api/predict", data=body,
                            headers={**form, "Origin": "http://evil.example"})
    assert code == 403 and "cross-site" in result["error"]
    own = f"http://127.0.0.1:{device.web.port}"
    assert get_json(url + "api/predict", data=body, headers={**form, "Origin": own})[0] == 200


def test_the_cookie_is_not_the_token_and_short_tokens_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.config import ConfigError

    monkeypatch.setenv("EDGE_WEB_TOKEN", "s3cret-token-long")
    d = start(tmp_path, auth_token_env="EDGE_WEB_TOKEN")
    try:
        code, headers, _ = get(d.web.url + "?token=s3cret-token-long")
        cookie = headers["Set-Cookie"]
        assert code == 200 and "s3cret" not in cookie and "SameSite=Strict" in cookie
    finally:
        d.pipeline.stop()
        d.pipeline.join()
        d.close()
    monkeypatch.setenv("EDGE_WEB_TOKEN", "x")
    with pytest.raises(ConfigError, match="auth_token_env: the token has 1 characters"):
        start(tmp_path / "short", auth_token_env="EDGE_WEB_TOKEN")


def test_event_streams_beyond_the_cap_get_503_and_health_still_answers(
        device: Device) -> None:
    from edge.web.app import MAX_STREAMS

    url = device.web.url
    opened = [urllib.request.urlopen(url + "api/events/stream", timeout=30)
              for _ in range(MAX_STREAMS)]
    try:
        assert get(url + "api/events/stream")[0] == 503
        assert get(url + "api/health")[0] in (200, 503)
        assert get(url + "metrics")[0] == 200
    finally:
        for r in opened:
            r.close()
    # Slots come back within seconds of the clients going, and HEAD takes none.
    for _ in range(3 * MAX_STREAMS):
        head = urllib.request.Request(url + "api/events/stream", method="HEAD")
        with urllib.request.urlopen(head, timeout=30) as r:
            assert r.status == 200

    def a_slot_is_free() -> bool:
        try:
            with urllib.request.urlopen(url + "api/events/stream", timeout=30) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    assert wait_until(a_slot_is_free, timeout=30, interval=0.5)


def test_the_servers_own_error_answers_carry_the_security_headers(device: Device) -> None:
    import socket
    from urllib.parse import urlsplit

    from edge.web.app import SECURITY_HEADERS

    where = urlsplit(device.web.url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 400")
    for name in SECURITY_HEADERS:
        assert name.lower() + ":" in head, name
