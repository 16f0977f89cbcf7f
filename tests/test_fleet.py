"""A fleet on loopback: five real devices, one Mosquitto (restarted mid-run), the fleet's
consumer (python -m fleet.consume) and Debian's Prometheus with the shipped recipe."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from fleet.consume import Deduplicator, FleetConsumer, remembered
from tests.fixtures import ROOT, wait_until
from tests.mqtt_broker import Broker, free_port, mosquitto_binary

RECIPE = ROOT / "fleet/prometheus"
DEVICES = 5
TOKEN = "fleet-token-for-the-loopback-test"


def test_the_consumer_writes_each_event_once(tmp_path: Path) -> None:
    out = (tmp_path / "events.jsonl").open("w")
    consumer = FleetConsumer(out, Deduplicator(size=2))
    event = {"id": "r1-1", "device": "a", "type": "appeared"}
    assert consumer.handle("p/a/event", json.dumps(event).encode())
    assert not consumer.handle("p/a/event", json.dumps(event).encode())  # the re-sent copy
    assert consumer.handle("p/b/event", json.dumps({**event, "id": "r2-1",
                                                      "device": "b"}).encode())
    assert not consumer.handle("p/b/event", b"not json")
    out.close()
    assert [json.loads(line)["id"] for line in (tmp_path / "events.jsonl").open()] == [
        "r1-1", "r2-1"]
    assert consumer.summary() == ("2 event(s) from 2 device(s) (a 1, b 1); 1 duplicate(s) "
                                  "dropped, 0 id conflict(s), 1 malformed, 0 from another "
                                  "device than their topic")


@pytest.mark.parametrize("payload", [
    b"[" * 200_000,                                  # too deep for the JSON parser
    b'{"id": "x", "device": "a", "v": NaN}',         # not JSON, and not writable as JSON
    b'{"id": 1, "device": "a"}',                     # a number, not a string id
    b'{"id": null, "device": "a"}',
    b'{"id": "", "device": "a"}',
    b'["id", "device"]',
    b"\xff\xfe",                                     # not UTF-8
    b'{"id": "big", "device": "a", "pad": "' + b"x" * 70_000 + b'"}',
])
def test_a_message_that_is_not_an_event_is_counted_and_never_stops_the_consumer(
        tmp_path: Path, payload: bytes) -> None:
    out = (tmp_path / "events.jsonl").open("w")
    consumer = FleetConsumer(out)
    assert not consumer.handle("p/a/event", payload)
    assert consumer.handle("p/a/event", b'{"id": "r1-1", "device": "a"}')
    out.close()
    assert consumer.malformed == 1
    assert [json.loads(line)["id"] for line in (tmp_path / "events.jsonl").open()] == ["r1-1"]


def test_a_restarted_consumer_remembers_what_its_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    event = json.dumps({"id": "r1-1", "device": "a"}).encode()
    for _ in range(3):  # three starts, the broker handing the retained event each time
        with path.open("a") as out:
            FleetConsumer(out, remembered(path)).handle("p/a/event", event)
    assert len(path.read_text().splitlines()) == 1


def test_conflicting_ids_and_foreign_devices_are_reported(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    out = (tmp_path / "events.jsonl").open("w")
    consumer = FleetConsumer(out)
    assert consumer.handle("p/a/event", b'{"id": "1", "device": "a", "emotion": "happy"}')
    assert not consumer.handle("p/a/event", b'{"id": "1", "device": "a", "emotion": "sad"}')
    assert consumer.dedupe.conflicts == 1 and "other content" in caplog.text
    assert consumer.handle("p/a/event", b'{"id": "2", "device": "b"}')
    assert consumer.mismatched == 1 and "says device 'b'" in caplog.text


def test_the_id_memory_is_bounded() -> None:
    d = Deduplicator(size=2)
    assert d.first("a") and d.first("b") and d.first("c")
    assert d.first("a")  # forgotten: the oldest of three with room for two


def test_bad_consumer_flags_exit_2() -> None:
    for args, message in ((["--prefix", "a/b"], "--prefix"), (["--port", "0"], "--port"),
                          (["--ca-file", "/nonexistent"], "no such regular file"),
                          (["--ca-file", __file__], "not a PEM certificate"),
                          (["--max-seconds", "inf"], "--max-seconds"),
                          (["--client-id", ""], "--client-id"),
                          (["--client-id", "x" * 70_000], "--client-id"),
                          (["--host", ""], "--host"),
                          (["--out", "/nonexistent/dir/events.jsonl"], "--out: cannot write")):
        r = subprocess.run([sys.executable, "-m", "fleet.consume", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto (apt)")
def test_the_load_test_counts_every_message(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    try:
        r = subprocess.run([sys.executable, "-m", "fleet.load", "--port", str(broker.port),
                            "--devices", "3", "--rate", "5", "--seconds", "1",
                            "--broker-pid", str(broker.proc.pid)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        broker.stop()
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout.splitlines()[0])
    assert figures["sent"] == figures["received"] >= 15 and figures["lost"] == 0
    assert figures["broker_cpu_percent"] >= 0 and "3 devices x 5/s" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "fleet.load", "--devices", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--devices" in bad.stderr


def device_config(tmp: Path, i: int, broker: int, web: int, token: Path) -> Path:
    d = tmp / f"dev{i}"
    d.mkdir()
    cfg = d / "config.yaml"
    cfg.write_text(f"""
device: room{i % 2}-cam{i}
state_dir: {d / "state"}
source:
  uri: {ROOT / "models/sample/astronaut.mp4"}
  pace: "on"
tracking:
  summary_every_s: 1
sinks:
  log:
    path: {d / "events.jsonl"}
  mqtt:
    enabled: true
    host: 127.0.0.1
    port: {broker}
web:
  enabled: true
  port: {web}
  auth_token_file: {token}
""")
    return cfg


def logged_ids(tmp: Path) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for i in range(DEVICES):
        log = tmp / f"dev{i}" / "events.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        ids[f"room{i % 2}-cam{i}"] = {json.loads(line)["id"] for line in lines}
    return ids


def consumed(path: Path) -> list[dict]:
    text = path.read_text() if path.exists() else ""
    # The last line may be half written while the consumer runs.
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["data"]["result"]
    except OSError:
        return []


@pytest.mark.skipif(mosquitto_binary() is None or shutil.which("prometheus") is None,
                    reason="needs mosquitto and prometheus (apt)")
def test_a_fleet_loses_nothing_across_a_broker_restart_and_prometheus_sees_it(
        tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    webs = [free_port() for _ in range(DEVICES)]
    # The shipped recipe, with this test's devices and a one-second pace.
    prom = tmp_path / "prometheus"
    shutil.copytree(RECIPE, prom)
    (prom / "emotion-edge.token").write_text(TOKEN + "\n")
    (prom / "prometheus.yml").write_text((prom / "prometheus.yml").read_text().replace(
        "15s", "1s").replace("refresh_interval: 1m", "refresh_interval: 1s"))
    (prom / "devices.yml").write_text("".join(
        f'- targets: ["127.0.0.1:{w}"]\n  labels: {{room: room{i % 2}}}\n'
        for i, w in enumerate(webs)))
    prom_port = free_port()
    events = tmp_path / "fleet.jsonl"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={prom / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w")))
        consumer = subprocess.Popen(
            [sys.executable, "-m", "fleet.consume", "--port", str(broker.port),
             "--out", str(events)], cwd=ROOT, stderr=(tmp_path / "consumer.log").open("w"))
        procs.append(consumer)
        assert wait_until(lambda: "subscribed" in (tmp_path / "consumer.log").read_text(),
                          timeout=60)
        for i in range(DEVICES):
            cfg = device_config(tmp_path, i, broker.port, webs[i], token)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edge", "--config", str(cfg)], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=(cfg.parent / "edge.log").open("w")))

        def every_device_heard() -> bool:
            return len({e["device"] for e in consumed(events)}) == DEVICES

        assert wait_until(every_device_heard, timeout=120), (tmp_path / "dev0/edge.log"
                                                              ).read_text()[-2000:]
        # The broker goes away: the devices keep logging and spool what they cannot send.
        broker.stop()
        during = {d: len(ids) for d, ids in logged_ids(tmp_path).items()}
        assert wait_until(lambda: all(len(ids) >= during[d] + 3
                                      for d, ids in logged_ids(tmp_path).items()), timeout=120)
        broker.start()
        expected = logged_ids(tmp_path)

        def all_delivered() -> bool:
            got = {e["id"] for e in consumed(events)}
            return all(ids <= got for ids in expected.values())

        assert wait_until(all_delivered, timeout=120), "events lost across the restart"
        got = consumed(events)
        assert len({e["id"] for e in got}) == len(got)  # each event once
        every = set().union(*logged_ids(tmp_path).values())
        assert {e["id"] for e in got} <= every  # and only what a device logged

        def fleet_up() -> bool:
            # Each rule answers once Prometheus has scraped every device (a rate needs
            # two scrapes) and evaluated the rules after that.
            up = query(prom_port, 'count(up{job="emotion-edge"} == 1)')
            rooms = query(prom_port, "room:emotion_edge_faces_in_view:sum")
            return (bool(up) and up[0]["value"][1] == str(DEVICES)
                    and {r["metric"]["room"] for r in rooms} == {"room0", "room1"}
                    and len(query(prom_port, "instance:emotion_edge_frames_dropped:rate5m"))
                    == DEVICES
                    and bool(query(prom_port, "room_emotion:emotion_edge_faces:share"))
                    and bool(query(prom_port, "fleet:emotion_edge_devices_down:count")))

        assert wait_until(fleet_up, timeout=120), (tmp_path / "prometheus.log").read_text()[-2000:]
        shares = query(prom_port, "room_emotion:emotion_edge_faces:share")
        assert all(0 <= float(s["value"][1]) <= 1 for s in shares)
        for room in ("room0", "room1"):
            total = sum(float(s["value"][1]) for s in shares if s["metric"]["room"] == room)
            assert total == pytest.approx(0) or total == pytest.approx(1)
        assert {s["metric"]["emotion"] for s in shares} >= {"happy", "neutral"}
        assert query(prom_port, "fleet:emotion_edge_devices_down:count")[0]["value"][1] == "0"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
    assert consumer.returncode == 0
