"""The fleet's broker config (fleet/mosquitto/fleet.conf) loses nothing: a consumer away
for 3,000 events gets all 3,000, and a broker killed with kill -9 while the consumer is
away (once, or again just after it came back) loses none of what a device logged; each
event is written once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.events import EmotionEvent
from edge.preprocessing import EMOTIONS
from tests.fixtures import ROOT, wait_until
from tests.mqtt_broker import Broker, mosquitto_binary
from tests.test_mqtt import make_sink

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")

#: The keys of the shipped file that decide what survives (the listener and the folder
#: are the test's own).
KEPT = ("autosave_interval", "max_queued_messages", "max_queued_bytes")


def fleet_broker(tmp_path: Path, port: int | None = None) -> Broker:
    lines = [line for line in (ROOT / "fleet/mosquitto/fleet.conf").read_text().splitlines()
             if line.split(" ")[0] in KEPT]
    assert len(lines) == len(KEPT)
    return Broker(tmp_path, port=port, extra=lines)


def consumer(port: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fleet.consume", "--host", "127.0.0.1", "--port", str(port),
         "--prefix", "fleet", "--client-id", "fleet-test", "--out", str(out)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)


def start_and_subscribe(port: int, out: Path) -> subprocess.Popen:
    """A consumer whose session the broker now knows (it logged its subscription)."""
    proc = consumer(port, out)
    seen: list[str] = []

    def subscribed() -> bool:
        line = proc.stderr.readline()
        seen.append(line)
        return "subscribed" in line or proc.poll() is not None

    assert wait_until(subscribed, timeout=30), "".join(seen)
    assert proc.poll() is None, "".join(seen)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def ids_in(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in out.read_text().splitlines()] \
        if out.exists() else []


def event(n: int) -> EmotionEvent:
    probs = {label: 1.0 / len(EMOTIONS) for label in EMOTIONS}
    return EmotionEvent(ts=1.0, device="cam", face=1, type="summary", emotion="happy",
                        confidence=0.5, probs=probs, box=(0, 0, 10, 10), frame=n, model="m",
                        id=f"run-{n}")


def test_a_consumer_away_for_3000_events_gets_all_of_them(tmp_path: Path) -> None:
    broker = fleet_broker(tmp_path).start()
    out = tmp_path / "events.jsonl"
    sink = None
    try:
        stop(start_and_subscribe(broker.port, out))
        sink = make_sink(broker.port, tmp_path / "state", topic_prefix="fleet",
                         max_inflight=100)
        for n in range(3000):
            sink.write(event(n))
        assert wait_until(lambda: len(sink.spool) == 0, timeout=120)
        proc = start_and_subscribe(broker.port, out)
        assert wait_until(lambda: len(ids_in(out)) >= 3000, timeout=120), len(ids_in(out))
        stop(proc)
        ids = ids_in(out)
        assert len(ids) == len(set(ids)) == 3000
    finally:
        if sink is not None:
            sink.close()
        broker.stop()


@pytest.mark.parametrize("kills", [1, 2])
def test_a_broker_killed_while_the_consumer_is_away_loses_nothing(tmp_path: Path,
                                                                   kills: int) -> None:
    broker = fleet_broker(tmp_path).start()
    out = tmp_path / "events.jsonl"
    sink = None
    try:
        stop(start_and_subscribe(broker.port, out))
        # The consumer's session is on disk (the broker writes every second): a fleet whose
        # consumer has run before, not one that first subscribed a moment before the kill.
        assert wait_until(lambda: (tmp_path / "mosquitto.db").exists(), timeout=30)
        sink = make_sink(broker.port, tmp_path / "state", topic_prefix="fleet")
        for n in range(150):
            sink.write(event(n))
        assert wait_until(lambda: len(sink.spool) == 0, timeout=60)
        for kill in range(kills):
            replayed = sink.replayed
            broker.kill()
            if kill == 0:
                for n in range(150, 300):  # logged while the broker is down: spooled
                    sink.write(event(n))
            broker = fleet_broker(tmp_path, broker.port).start()
            # Back: the spool delivered and the events acknowledged in the last replay_s
            # seconds before the kill published again (those acknowledged earlier were on
            # the broker's disk already). How many that is depends on how fast this machine
            # delivered them, so only the end is asserted: every event reaches the consumer.
            assert wait_until(lambda r=replayed: len(sink.spool) == 0 and sink.replayed > r
                              and sink.replay_due == 0, timeout=90), (
                f"after kill {kill + 1}: spooled {len(sink.spool)}, replayed "
                f"{sink.replayed - replayed}, still due {sink.replay_due}, "
                f"connected {sink.connected}")
        proc = start_and_subscribe(broker.port, out)
        arrived = wait_until(lambda: len(ids_in(out)) >= 300, timeout=90)
        stop(proc)
        ids = ids_in(out)
        missing = sorted({f"run-{n}" for n in range(300)} - set(ids),
                         key=lambda i: int(i[4:]))
        assert arrived and sorted(ids) == sorted(f"run-{n}" for n in range(300)), (
            f"{len(ids)} arrived, replayed {sink.replayed}, missing {len(missing)}: "
            f"{missing[:3]}...{missing[-3:]}")
    finally:
        if sink is not None:
            sink.close()
        broker.stop()
