"""The MQTT sink against a real Mosquitto on loopback: delivery, outage, restart, auth, TLS."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import jsonschema
import pytest

from edge.config import ConfigError, MqttSinkConfig, MqttTlsConfig, build
from edge.events import EVENT_SCHEMA, EmotionEvent
from edge.preprocessing import EMOTIONS
from tests.fixtures import wait_until
from tests.mqtt_broker import Broker, Subscriber, mosquitto_binary

pytestmark = pytest.mark.skipif(mosquitto_binary() is None,
                                reason="mosquitto is not installed (apt-get install mosquitto)")


def event(i: int, face: int = 1) -> EmotionEvent:
    probs = dict.fromkeys(EMOTIONS, 0.05)
    probs["happy"] = 0.7
    return EmotionEvent(ts=1_800_000_000 + i / 30, device="cam", face=face, type="changed",
                        emotion="happy", confidence=0.7, probs=probs, box=(1, 2, 30, 30),
                        frame=i, model="m-1", id=f"run1-{i}-{face}")


def sink_config(port: int, **kw) -> MqttSinkConfig:
    base = {"enabled": True, "host": "127.0.0.1", "port": port,
            "reconnect": {"initial_s": 1, "max_s": 1}}
    return build(MqttSinkConfig, {**base, **kw}, "sinks.mqtt")


def make_sink(port: int, state: Path, **kw):
    from edge.sinks.mqtt import MqttSink

    return MqttSink(sink_config(port, **kw), "cam", state)


def wait_connected(sink, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not sink.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.connected


def dedupe(events: list[dict]) -> list[int]:
    seen, frames = set(), []
    for e in events:
        if e["id"] not in seen:
            seen.add(e["id"])
            frames.append(e["frame"])
    return frames


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def test_events_state_status_and_discovery(broker: Broker, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, "#")
    sink = make_sink(broker.port, tmp_path / "state", homeassistant_discovery=True)
    try:
        wait_connected(sink)
        for i in range(20):
            sink.write(event(i))
        sink.status({"faces": 1, "dominant": "happy", "fps": 29.5, "source": "ok"})
        assert sub.wait_for(lambda: len(sub.events()) >= 20)
        for e in sub.events():
            jsonschema.validate(e, EVENT_SCHEMA)
        assert dedupe(sub.events()) == list(range(20))
        assert sub.wait_for(lambda: sub.on("/state"))
        state = json.loads(sub.on("emotion-edge/cam/state")[-1])
        assert state["faces"] == 1 and state["dominant"] == "happy" and state["fps"] == 29.5
        assert sub.on("emotion-edge/cam/status")[0] == b"online"
        configs = {t: json.loads(p) for t, p, _ in sub.messages if t.endswith("/config")}
        assert set(configs) == {f"homeassistant/sensor/emotion_edge_cam/{k}/config"
                                for k in ("dominant_emotion", "faces", "fps")}
        for c in configs.values():
            assert c["availability_topic"] == "emotion-edge/cam/status"
            assert c["state_topic"] == "emotion-edge/cam/state"
        assert len(sink.spool) == 0
    finally:
        sink.close()
        sub.wait_for(lambda: b"offline" in sub.on("/status"), 5)
        sub.close()
    assert sub.on("/status")[-1] == b"offline"


def test_broker_outage_mid_stream_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, "emotion-edge/+/event")
    sink = make_sink(broker.port, tmp_path / "state")
    try:
        wait_connected(sink)
        for i in range(30):
            sink.write(event(i))
            time.sleep(0.005)
        broker.stop()  # mid-stream: some of these are in flight
        for i in range(30, 60):
            sink.write(event(i))
            time.sleep(0.005)
        assert len(sink.spool) > 0  # waiting on disk while the broker is away
        broker.start()
        for i in range(60, 80):
            sink.write(event(i))
        assert sub.wait_for(lambda: set(dedupe(sub.events())) >= set(range(80)), 30)
        assert dedupe(sub.events()) == list(range(80))  # each once, in order
    finally:
        sink.close()
        sub.close()


def test_restart_with_a_non_empty_spool_delivers_it(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    state = tmp_path / "state"
    first = make_sink(broker.port, state)  # the broker is not running yet
    for i in range(25):
        first.write(event(i))
    first.close()
    from edge.sinks.spool import Spool

    on_disk = Spool(state / "mqtt-spool.db", 100)
    assert len(on_disk) == 25  # survived the "service restart"
    on_disk.close()
    broker.start()
    sub = Subscriber(broker.port, "emotion-edge/+/event")
    second = make_sink(broker.port, state)
    try:
        second.write(event(25))
        assert sub.wait_for(lambda: len(set(dedupe(sub.events()))) >= 26, 20)
        assert dedupe(sub.events()) == list(range(26))
    finally:
        second.close()
        sub.close()
        broker.stop()


def test_spool_bound_discards_oldest_counted_and_logged(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    from tests.mqtt_broker import free_port

    sink = make_sink(free_port(), tmp_path / "state", spool_max_events=10)  # no broker
    try:
        for i in range(15):
            sink.write(event(i))
        assert len(sink.spool) == 10 and sink.discarded == 5
        assert [json.loads(p)["frame"] for _, _, p in sink.spool.after(0, 100)] == \
            list(range(5, 15))
        # Said once (at most once a minute), not once per discarded event.
        full = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
        assert len(full) == 1 and "1 discarded since start" in full[0], full
    finally:
        sink.close()


def test_username_and_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(tmp_path, passwords={"edge": "s3cret"}).start()
    good = tmp_path / "good.pw"
    good.write_text("s3cret\n")
    bad = tmp_path / "bad.pw"
    bad.write_text("wrong\n")
    try:
        sink = make_sink(broker.port, tmp_path / "s1", username="edge",
                         password_file=str(good))
        wait_connected(sink)
        sink.write(event(1))
        sink.flush()
        assert len(sink.spool) == 0
        sink.close()

        wrong = make_sink(broker.port, tmp_path / "s2", username="edge", password_file=str(bad))
        assert wait_until(lambda: "refused the connection" in caplog.text)
        wrong.write(event(2))
        assert not wrong.connected and len(wrong.spool) == 1  # kept, not lost
        wrong.close()
        assert "refused the connection: Not authorized" in caplog.text
        assert "check sinks.mqtt.username and the password" in caplog.text
        assert "wrong" not in caplog.text and "s3cret" not in caplog.text  # never logged
    finally:
        broker.stop()


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.sinks.broker import read_password

    monkeypatch.setenv("EDGE_MQTT_PW", "from-env")
    assert read_password(sink_config(1883, password_env="EDGE_MQTT_PW")) == "from-env"
    with pytest.raises(ConfigError, match="password_env: environment variable NOPE_PW"):
        read_password(sink_config(1883, password_env="NOPE_PW"))
    with pytest.raises(ConfigError, match="password_file: cannot read"):
        read_password(sink_config(1883, password_file=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="set password_file or password_env, not both"):
        sink_config(1883, password_file="a", password_env="B")


def _certificates(folder: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def write_key(key, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(minutes=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, folder / "server.key")
    return {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}


def test_tls(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")  # makes the test certificates (the dev extra)
    certs = _certificates(tmp_path)
    broker = Broker(tmp_path, tls=certs).start()
    sub = Subscriber(broker.port, "emotion-edge/+/event", ca_certs=str(certs["ca"]))
    try:
        sink = make_sink(broker.port, tmp_path / "state",
                         tls={"enabled": True, "ca_file": str(certs["ca"])})
        wait_connected(sink)
        sink.write(event(7))
        assert sub.wait_for(lambda: sub.events())
        assert sub.events()[0]["frame"] == 7
        sink.close()
    finally:
        sub.close()
        broker.stop()
    assert MqttTlsConfig().enabled is False


def test_service_publishes_the_sample_run(broker: Broker, tmp_path: Path,
                                          device_models: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
device: hall
state_dir: {tmp_path / "state"}
source:
  uri: {root / "models/sample/astronaut.mp4"}
model:
  path: {device_models / "emotion_int8.tflite"}
sinks:
  log:
    enabled: false
  mqtt:
    enabled: true
    host: 127.0.0.1
    port: {broker.port}
    state_every_s: 0.2
""")
    sub = Subscriber(broker.port, "emotion-edge/hall/#")
    try:
        r = subprocess.run([sys.executable, "-m", "edge", "--config", str(cfg)], cwd=root,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert sub.wait_for(lambda: len(sub.events()) >= 2 and
                            sub.on("/status")[-1:] == [b"offline"])
        types = [e["type"] for e in sub.events()]
        assert types[0] == "appeared" and types[-1] == "left"
        assert sub.on("/status")[0] == b"online"
        states = [json.loads(s) for s in sub.on("/state")]
        assert states and {"faces", "dominant", "fps", "source"} <= set(states[-1])
    finally:
        sub.close()


def test_two_devices_of_one_name_are_told_apart_in_one_line(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = make_sink(broker.port, tmp_path / "a")
    second = make_sink(broker.port, tmp_path / "b")  # the same device name: "cam"
    try:
        said = "another client probably uses this device's client id"
        assert wait_until(lambda: said in caplog.text, timeout=60)
        assert caplog.text.count(said) == 1  # said once, not on every takeover
        assert "'emotion-edge-cam'" in caplog.text
    finally:
        first.close()
        second.close()


def test_the_device_name_defaults_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from edge.config import load

    monkeypatch.setattr(socket, "gethostname", lambda: "class room/3")
    assert load(None).device == "class-room-3"
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert load(None).device == "edge"
