"""``python -m fleet.load``: how many devices one broker holds, measured on your broker.

Simulates ``--devices`` devices, each an MQTT client of its own publishing event-shaped
messages (the size of a real event) at ``--rate`` per second at QoS 1 under
``<prefix>/<device>/event``, while one consumer subscribed to ``<prefix>/+/event``
counts what arrives. Reports the messages sent and received, the ones lost, the rate
the broker carried, the delivery latency and, with ``--broker-pid``, the broker's own
CPU use. Exit codes: 0 nothing lost, 1 messages lost or a broker failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleet.broker_args import add_broker_flags, check_broker_flags

log = logging.getLogger("fleet.load")


def event_payload(device: str, n: int) -> bytes:
    """A message shaped and sized like a device's event (about 400 bytes)."""
    probs = dict.fromkeys(("angry", "disgust", "fear", "happy", "sad", "surprise",
                           "neutral"), 0.1429)
    return json.dumps({
        "id": f"{device}-{n}", "ts": "2026-12-07T10:00:00.000000Z", "device": device,
        "face": 1 + n % 12, "type": "changed", "emotion": "happy", "confidence": 0.8123,
        "probs": probs, "box": [320, 180, 96, 96], "frame": n, "model": "load-test",
        "sent": time.monotonic()}).encode()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fleet.load", description=__doc__.split(
        "\n\n")[0])
    add_broker_flags(p, "emotion-edge-load")
    p.add_argument("--devices", type=int, default=50, help="simulated devices (default 50)")
    p.add_argument("--rate", type=float, default=5.0,
                   help="messages per second per device (default 5)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to send (default 20)")
    p.add_argument("--broker-pid", type=int, help="the broker's process id, for its CPU use")
    args = p.parse_args(argv)
    check_broker_flags(p, args)
    if not 1 <= args.devices <= 10_000:
        p.error(f"--devices: must be in 1..10000, got {args.devices}")
    if not 0 < args.rate <= 1000 or not 0 < args.seconds <= 3600:
        p.error("--rate must be in (0, 1000] and --seconds in (0, 3600]")
    if args.broker_pid is not None and not Path(f"/proc/{args.broker_pid}/stat").exists():
        p.error(f"--broker-pid: no process {args.broker_pid}")
    return args


class Receiver:
    """The consumer side: distinct ids received and their delivery latencies."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.latency_ms: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, client: Any, userdata: Any, msg: Any) -> None:
        event = json.loads(msg.payload)
        with self.lock:
            if event["id"] not in self.ids:
                self.ids.add(event["id"])
                self.latency_ms.append(1000.0 * (time.monotonic() - event["sent"]))


def _connected(mqtt: Any, args: argparse.Namespace, client_id: str) -> Any:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(20)  # a device's default (mqtt.max_inflight)
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    return client


def run(args: argparse.Namespace) -> dict:
    """Send, receive, and return the figures."""
    import paho.mqtt.client as mqtt

    receiver = Receiver()
    subscribed = threading.Event()
    consumer = _connected(mqtt, args, f"{args.prefix}-consumer")
    consumer.on_message = receiver
    consumer.on_subscribe = lambda *_: subscribed.set()
    consumer.subscribe(f"{args.prefix}/+/event", qos=1)
    devices = [(f"dev{i:04d}", _connected(mqtt, args, f"{args.prefix}-dev{i}"))
               for i in range(args.devices)]
    # A broker that is there takes a connection in milliseconds; one that is not (an
    # unroutable address) is said so in seconds, not after a long wait.
    allowed = 5.0 + args.devices / 200
    deadline = time.monotonic() + allowed
    while not (subscribed.is_set() and all(c.is_connected() for _, c in devices)):
        if time.monotonic() > deadline:
            raise OSError(f"not every client connected within {allowed:.0f} s")
        time.sleep(0.05)
    cpu0 = cpu_seconds(args.broker_pid) if args.broker_pid else 0.0
    sent, start = 0, time.monotonic()
    interval = 1.0 / args.rate
    tick = 0
    while time.monotonic() - start < args.seconds:
        for name, client in devices:
            client.publish(f"{args.prefix}/{name}/event", event_payload(name, tick), qos=1)
            sent += 1
        tick += 1
        time.sleep(max(0.0, start + tick * interval - time.monotonic()))
    sending = time.monotonic() - start
    deadline = time.monotonic() + 30
    while len(receiver.ids) < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    wall = time.monotonic() - start
    cpu = (cpu_seconds(args.broker_pid) - cpu0) if args.broker_pid else None
    for _, client in [*devices, ("consumer", consumer)]:
        client.disconnect()
        client.loop_stop()
    lat = sorted(receiver.latency_ms) or [0.0]
    return {"devices": args.devices, "rate_per_device": args.rate, "sent": sent,
            "received": len(receiver.ids), "lost": sent - len(receiver.ids),
            "messages_per_s": round(len(receiver.ids) / sending, 1),
            "latency_p50_ms": round(lat[len(lat) // 2], 1),
            "latency_p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "broker_cpu_percent": round(100 * cpu / wall, 1) if cpu is not None else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        r = run(args)
    except OSError as exc:
        log.error("cannot reach the broker at %s:%d (%s)", args.host, args.port,
                  exc.strerror or exc)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(r))
    print(f"{r['devices']} devices x {r['rate_per_device']:g}/s: {r['received']} of "
          f"{r['sent']} delivered ({r['lost']} lost), {r['messages_per_s']:.0f} messages/s, "
          f"latency p50 {r['latency_p50_ms']:.0f} ms, p99 {r['latency_p99_ms']:.0f} ms"
          + (f", broker CPU {r['broker_cpu_percent']:.0f} % of a core"
             if r["broker_cpu_percent"] is not None else ""))
    return 0 if r["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
