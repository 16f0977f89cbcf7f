"""MQTT brokers that misbehave: each cause is said once, out loud, and nothing is lost."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import MqttSinkConfig, build
from edge.events import EmotionEvent
from edge.preprocessing import EMOTIONS
from tests.fixtures import wait_until


class FakeServer:
    """A TCP server on loopback that is not a working MQTT broker."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.behaviour == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.close()
            elif self.behaviour == "drop":
                conn.recv(64)
                conn.close()
            else:  # silent: accept and never answer
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=["garbage", "drop", "silent", "tls-to-plain"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeServer]]:
    behaviour = request.param
    srv = FakeServer("silent" if behaviour == "tls-to-plain" else behaviour)
    yield behaviour, srv
    srv.close()


def _event(i: int) -> EmotionEvent:
    return EmotionEvent(ts=1_800_000_000.0 + i, device="cam", face=1, type="changed",
                        emotion="happy", confidence=0.9, probs=dict.fromkeys(EMOTIONS, 0.1),
                        box=(0, 0, 10, 10), frame=i, model="m", id=f"r-{i}")


def test_a_broker_that_misbehaves_is_said_once_and_events_stay_spooled(
        server: tuple[str, FakeServer], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from edge.sinks.mqtt import MqttSink

    behaviour, srv = server
    cfg = build(MqttSinkConfig, {
        "enabled": True, "host": "127.0.0.1", "port": srv.port, "keepalive_s": 1,
        "tls": {"enabled": behaviour == "tls-to-plain", "insecure": True},
        "reconnect": {"initial_s": 0.1, "max_s": 0.2}}, "sinks.mqtt")
    with caplog.at_level("INFO", logger="edge.sinks.mqtt"):
        sink = MqttSink(cfg, "cam", tmp_path)
        for i in range(3):
            sink.write(_event(i))
        said = lambda: [r for r in caplog.records if r.levelname == "WARNING"]  # noqa: E731
        assert wait_until(lambda: len(said()) >= 1, timeout=30)
        # Let it retry a few more times: the same cause must not be said again.
        assert wait_until(lambda: srv.accepted >= 3, timeout=60)
        first = said()[0].getMessage()
        sink.close()
    warnings = said()
    assert len({w.getMessage() for w in warnings}) == 1, [w.getMessage() for w in warnings]
    assert f"127.0.0.1:{srv.port}" in first
    assert ("cannot be reached" in first if behaviour == "tls-to-plain"
            else "closed the connection before accepting it" in first)
    assert "3 event(s) stay spooled" in caplog.text  # nothing lost


def test_a_clean_stop_is_not_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.mqtt_broker import Broker, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    from edge.sinks.mqtt import MqttSink

    broker = Broker(tmp_path).start()
    try:
        cfg = build(MqttSinkConfig, {"enabled": True, "host": "127.0.0.1",
                                     "port": broker.port}, "sinks.mqtt")
        with caplog.at_level("INFO", logger="edge.sinks.mqtt"):
            sink = MqttSink(cfg, "cam", tmp_path / "state")
            assert wait_until(lambda: sink.connected)
            sink.close()
        assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    finally:
        broker.stop()


def test_the_delivery_thread_is_restarted_after_a_failure(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.mqtt_broker import Broker, Subscriber, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    from edge.sinks.mqtt import MqttSink
    from edge.sinks.spool import Spool

    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, "emotion-edge/+/event")
    real_after = Spool.after
    calls = {"n": 0}

    def flaky_after(self: Spool, *args: object) -> list:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk I/O error")
        return real_after(self, *args)

    monkeypatch.setattr(Spool, "after", flaky_after)
    try:
        cfg = build(MqttSinkConfig, {"enabled": True, "host": "127.0.0.1",
                                     "port": broker.port}, "sinks.mqtt")
        sink = MqttSink(cfg, "cam", tmp_path / "state")
        assert wait_until(lambda: sink.connected)
        for i in range(20):
            sink.write(_event(i))
        assert sub.wait_for(lambda: {e["id"] for e in sub.events()} >= {f"r-{i}"
                                                                           for i in range(20)},
                            30)
        assert sink.delivery_failures == 1
        assert "MQTT delivery failed; restarting it" in caplog.text
        sink.close()
    finally:
        sub.close()
        broker.stop()
