"""``python -m fleet.consume``: every device's events from one broker, each exactly once.

A device publishes each event at QoS 1 under ``<prefix>/<device>/event`` and keeps it in
its spool until the broker acknowledges it, so an event can arrive twice (the broker
went away between receiving it and acknowledging it) but is never lost. A consumer
therefore subscribes to the wildcard ``<prefix>/+/event`` in a persistent session (a
fixed client id, QoS 1: the broker keeps what arrives while the consumer is away) and
drops any event whose ``id`` it has already seen. It writes each new event as one JSON
line, to stdout or a file, for a database, a dashboard or a script. Written to a file,
the ids of the file's latest events are read back at start, so a restarted consumer does
not write again what the broker hands it a second time.

Each message is handled on its own: one that is not an event (not JSON, too deep, too
large, NaN, no string ``id`` and ``device``) is counted as malformed, reported and
acknowledged, so it can never stop the consumer nor come back after a restart. An event
whose ``device`` is not the one in its topic is written and reported; one whose id was
seen with other content is reported and not written.

Exit codes: 0 stopped (SIGTERM, or ``--max-seconds`` reached), 1 broker failure,
2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import signal
import sys
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import IO, Any

from fleet.broker_args import add_broker_flags, check_broker_flags

log = logging.getLogger("fleet.consume")

#: Event ids remembered for de-duplication: a device re-sends only what the broker had
#: not acknowledged (at most its in-flight window), so this covers any replay many times.
REMEMBERED_IDS = 1_000_000

#: The largest message taken as an event: a device's events are a few hundred bytes.
MAX_EVENT_BYTES = 64 * 1024


class Deduplicator:
    """Remembers the latest ``size`` event ids with a digest of their content;
    :meth:`first` is True once per id."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self.size = size
        self._seen: OrderedDict[str, str] = OrderedDict()
        self.duplicates = 0
        self.conflicts = 0

    def first(self, event_id: str, digest: str = "") -> bool:
        """Whether ``event_id`` is new (and remember it). A repeat with another
        ``digest`` (the same id, other content) is counted as a conflict."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            if digest and self._seen[event_id] and self._seen[event_id] != digest:
                self.conflicts += 1
                log.warning("event %s arrived again with other content; the first one "
                            "stands", event_id)
            else:
                self.duplicates += 1
            return False
        self._seen[event_id] = digest
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


def digest_of(event: dict) -> str:
    """A digest of an event's content, the same for the same event however it is spaced."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_event(payload: bytes) -> dict:
    """The event in ``payload``, or ValueError saying why it is none."""
    if len(payload) > MAX_EVENT_BYTES:
        raise ValueError(f"{len(payload)} bytes, above {MAX_EVENT_BYTES}")
    try:
        event = json.loads(payload, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "device"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise ValueError(f"no string '{key}'")
    return event


def remembered(path: Path, size: int = REMEMBERED_IDS) -> Deduplicator:
    """The de-duplication memory of an output file's latest ``size`` events."""
    dedupe = Deduplicator(size)
    if not path.is_file():
        return dedupe
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                event = parse_event(line.encode())
            except ValueError:
                continue
            dedupe.first(event["id"], digest_of(event))
    return dedupe


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
        self.mismatched = 0
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> bool:
        """One message; True when it was a new event and was written. Never raises for a
        message's content."""
        try:
            event = parse_event(payload)
        except ValueError as exc:
            self.malformed += 1
            log.warning("%s: not an event (%s); skipped", topic, exc)
            return False
        device = event["device"]
        parts = topic.split("/")
        with self._lock:
            if not self.dedupe.first(event["id"], digest_of(event)):
                return False
            if len(parts) >= 3 and parts[-2] != device:
                self.mismatched += 1
                log.warning("%s: event %s says device %r; written, check that device's "
                            "name", topic, event["id"], device)
            self.per_device[device] += 1
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.out.flush()
        return True

    def summary(self) -> str:
        """Events per device, duplicates dropped, malformed messages."""
        devices = ", ".join(f"{d} {n}" for d, n in sorted(self.per_device.items()))
        return (f"{sum(self.per_device.values())} event(s) from {len(self.per_device)} "
                f"device(s) ({devices or 'none'}); {self.dedupe.duplicates} duplicate(s) "
                f"dropped, {self.dedupe.conflicts} id conflict(s), {self.malformed} "
                f"malformed, {self.mismatched} from another device than their topic")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fleet.consume", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_broker_flags(p, "emotion-edge")
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
    check_broker_flags(p, args)
    if not math.isfinite(args.max_seconds) or args.max_seconds < 0:
        p.error(f"--max-seconds: a finite number of seconds >= 0, got {args.max_seconds}")
    if not 1 <= len(args.client_id) <= 128 or not args.client_id.isprintable():
        p.error("--client-id: 1 to 128 printable characters (the broker keeps the session "
                "under it)")
    if args.username is not None and not _utf8(args.username):
        p.error("--username: not valid UTF-8 text")
    try:
        _check_files(p, args)
    except OSError as exc:  # a name too long for the file system, say
        p.error(f"{exc.filename}: {exc.strerror or exc}")
    return args


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _utf8_file(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_files(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, path in (("--password-file", args.password_file), ("--ca-file", args.ca_file)):
        if path is not None and not path.is_file():
            p.error(f"{flag}: {path}: no such regular file")
        if path is not None and path.stat().st_size > 1 << 20:
            p.error(f"{flag}: {path}: larger than 1 MiB")
    if args.password_file is not None and not _utf8_file(args.password_file):
        p.error(f"--password-file: {args.password_file}: not UTF-8 text")
    if args.ca_file is not None and b"-----BEGIN CERTIFICATE-----" not in args.ca_file.read_bytes():
        p.error(f"--ca-file: {args.ca_file}: not a PEM certificate")
    if args.out is not None and args.out.exists() and not args.out.is_file():
        p.error(f"--out: {args.out}: not a regular file")


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
        try:
            consumer.handle(msg.topic, msg.payload)
        except OSError as exc:  # the output: stop rather than acknowledge what is lost
            failure.append(f"--out: cannot write ({exc.strerror or exc})")
            stop.set()
            raise

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
    consumer = FleetConsumer(out, remembered(args.out) if args.out else None)
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
