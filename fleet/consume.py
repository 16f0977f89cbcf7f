"""``python -m fleet.consume``: every device's events from one broker, each exactly once.

A device publishes each event at QoS 1 under ``<prefix>/<device>/event`` and keeps it in
its spool until the broker acknowledges it, so an event can arrive twice (the broker
went away between receiving it and acknowledging it) but is never lost. A consumer
therefore subscribes to the wildcard ``<prefix>/+/event`` in a persistent session (a
fixed client id, QoS 1: the broker keeps what arrives while the consumer is away) and
drops any event whose ``id`` it has already seen. It writes each new event as one JSON
line, to stdout or a file, for a database, a dashboard or a script.

Exit codes: 0 stopped (SIGTERM, or ``--max-seconds`` reached), 1 broker failure,
2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("fleet.consume")

#: Event ids remembered for de-duplication: a device re-sends only what the broker had
#: not acknowledged (at most its in-flight window), so this covers any replay many times.
REMEMBERED_IDS = 1_000_000


class Deduplicator:
    """Remembers the latest ``size`` event ids; :meth:`first` is True once per id."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def first(self, event_id: str) -> bool:
        """Whether ``event_id`` is new (and remember it)."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class FleetConsumer:
    """Writes each device event once, as a JSON line, to ``out``.

    Args:
        out: where the events go (one JSON object per line).
        dedupe: the id memory.
    """

    def __init__(self, out: IO[str], dedupe: Deduplicator | None = None) -> None:
        self.out = out
        self.dedupe = dedupe or Deduplicator()
        self.per_device: Counter[str] = Counter()
        self.malformed = 0
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> bool:
        """One message; True when it was a new event and was written."""
        try:
            event = json.loads(payload)
            event_id, device = event["id"], event["device"]
        except (ValueError, TypeError, KeyError):
            self.malformed += 1
            log.warning("%s: not an event (no JSON with id and device); skipped", topic)
            return False
        with self._lock:
            if not self.dedupe.first(str(event_id)):
                return False
            self.per_device[str(device)] += 1
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.out.flush()
        return True

    def summary(self) -> str:
        """Events per device, duplicates dropped, malformed messages."""
        devices = ", ".join(f"{d} {n}" for d, n in sorted(self.per_device.items()))
        return (f"{sum(self.per_device.values())} event(s) from {len(self.per_device)} "
                f"device(s) ({devices or 'none'}); {self.dedupe.duplicates} duplicate(s) "
                f"dropped, {self.malformed} malformed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fleet.consume", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="localhost", help="the fleet's broker (default localhost)")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="emotion-edge",
                   help="the devices' mqtt.topic_prefix (default emotion-edge)")
    p.add_argument("--client-id", default="emotion-edge-fleet",
                   help="fixed, so the broker keeps this consumer's session and queues what "
                        "arrives while it is away (default emotion-edge-fleet)")
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path)
    p.add_argument("--ca-file", type=Path, help="TLS: the CA that signed the broker's cert")
    p.add_argument("--out", type=Path, help="append the events here (default stdout)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop after this long (default 0: run until stopped)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 1 <= args.port <= 65535:
        p.error(f"--port: must be in 1..65535, got {args.port}")
    if "/" in args.prefix or "+" in args.prefix or "#" in args.prefix or not args.prefix:
        p.error(f"--prefix: one topic level without '/', '+' or '#', got {args.prefix!r}")
    for flag, path in (("--password-file", args.password_file), ("--ca-file", args.ca_file)):
        if path is not None and not path.is_file():
            p.error(f"{flag}: {path}: no such file")
    return args


def _client(args: argparse.Namespace, consumer: FleetConsumer, stop: threading.Event,
            failure: list[str]) -> Any:
    import paho.mqtt.client as mqtt

    topic = f"{args.prefix}/+/event"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         clean_session=False, protocol=mqtt.MQTTv311)
    if args.username:
        password = (args.password_file.read_text().strip() if args.password_file else None)
        client.username_pw_set(args.username, password)
    if args.ca_file:
        client.tls_set(ca_certs=str(args.ca_file))
    client.reconnect_delay_set(1, 30)

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            failure.append(f"the broker refused the connection ({reason})")
            stop.set()
            return
        # Subscribing on every connect: harmless with a kept session, needed without one.
        c.subscribe(topic, qos=1)
        log.info("subscribed to %s on %s:%d", topic, args.host, args.port)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        consumer.handle(msg.topic, msg.payload)

    client.on_connect, client.on_message = on_connect, on_message
    return client


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop, failure = threading.Event(), []
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    except OSError as exc:
        log.error("--out: cannot write %s (%s)", args.out, exc.strerror or exc)
        return 2
    consumer = FleetConsumer(out)
    client = _client(args, consumer, stop, failure)
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as exc:
        log.error("cannot reach the broker at %s:%d (%s)", args.host, args.port,
                  exc.strerror or exc)
        return 1
    client.loop_start()
    try:
        stop.wait(args.max_seconds or None)
    except KeyboardInterrupt:
        return 130
    finally:
        client.disconnect()
        client.loop_stop()
        log.info("%s", consumer.summary())
        if out is not sys.stdout:
            out.close()
    if failure:
        log.error("%s", failure[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
