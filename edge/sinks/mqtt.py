"""MQTT sink (paho-mqtt 2.x): events at QoS 1, retained state and status, HA discovery.

Topics under ``<prefix>/<device>/``:

- ``event``: one JSON event per message, QoS 1, in order;
- ``state``: retained summary (faces in view, dominant emotion, fps, source health);
- ``status``: retained ``online`` on connect, ``offline`` as the last will and on stop.

No event is lost: every event is first appended to an on-disk spool and leaves it only
when the broker has acknowledged it. A delivery thread publishes from the head of the
spool, at most ``max_inflight`` at a time; after a reconnect it starts again from the
head, so an event whose acknowledgement was lost may arrive twice (consumers de-duplicate
by the event ``id``, unique across restarts) but none is missing and the order is kept.

A broker acknowledges an event before it has written it to disk (Mosquitto saves its
queues every ``autosave_interval``), so a broker killed outright can lose what it had
just acknowledged. After every reconnect the sink therefore publishes again the events
acknowledged in the ``replay_s`` seconds before the lost connection's last
acknowledgement (:mod:`edge.sinks.replay`): duplicates the consumer drops by ``id``, and
nothing a crash took.

Every packet is written by the network thread: paho writes a publish from the calling
thread when it does not know of a loop thread (ours is not paho's ``loop_start`` one),
and two threads writing one socket can interleave packets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.config import Config, ConfigError, MqttSinkConfig
from edge.events import EmotionEvent
from edge.sinks.broker import connect_failure, read_password
from edge.sinks.discovery import publish_discovery
from edge.sinks.replay import ReplayWindow
from edge.sinks.spool import Spool

log = logging.getLogger(__name__)


class MqttSink:
    """Publishes events, state and status to an MQTT broker.

    Args:
        cfg: the ``sinks.mqtt`` settings.
        device: device name (a topic level).
        state_dir: where the spool lives (``<state_dir>/mqtt-spool.db``).
        drain_s: how long ``close`` waits for the spool to empty while connected.
    """

    name = "mqtt"

    def __init__(self, cfg: MqttSinkConfig, device: str, state_dir: Path,
                 drain_s: float = 1.0) -> None:
        self.cfg = cfg
        self.device = device
        self.drain_s = drain_s
        base = f"{cfg.topic_prefix}/{device}"
        self.topic_event, self.topic_state, self.topic_status = (
            f"{base}/event", f"{base}/state", f"{base}/status")
        password = read_password(cfg)
        try:
            self.spool = Spool(Path(state_dir) / "mqtt-spool.db", cfg.spool_max_events)
        except Exception as exc:
            raise ConfigError(f"state_dir: cannot keep the MQTT spool in {state_dir} ({exc})") \
                from None
        self.discarded = 0
        self.delivered = 0
        self.delivery_failures = 0
        if len(self.spool):
            log.info("MQTT spool holds %d undelivered event(s) from before; replaying them",
                     len(self.spool))

        self.client_id = cfg.client_id or f"emotion-edge-{device}"
        self.client = self._new_client(password)

        self._connected = threading.Event()
        self._reset = threading.Event()  # a (re)connect: resend from the spool head
        self._wake = threading.Event()
        self._stop = threading.Event()
        # (message id, when its acknowledgement arrived, on which connection), from paho's
        # thread; the connection counter rises on every accepted connect
        self._acks: queue.SimpleQueue[tuple[int, float, int]] = queue.SimpleQueue()
        self._connection = 0
        self._replay = ReplayWindow(cfg.replay_s)  # the delivery thread's alone
        self._up_at = 0.0  # when the current connection was accepted
        self._short_lived: list[float] = []  # when connections closed soon after opening
        self.replayed = 0
        self._last_refusal = ""  # the last cause said out loud: each cause once, not per retry
        self._closing = False
        self._warned_full = -math.inf  # when the spool's last "full" warning was logged
        self._thread = threading.Thread(target=self._deliver, name="mqtt-delivery", daemon=True)
        self._thread.start()
        self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        # paho's network loop runs in a thread of ours (not loop_start's), so whatever kills
        # the loop (an error inside paho, a callback's) restarts it instead of leaving the
        # sink silently offline with events piling up in the spool.
        self._network_failures = 0
        self._net = threading.Thread(target=self._network, name="mqtt-network", daemon=True)
        self._net.start()
        log.info("MQTT sink: %s:%d, topics %s/{event,state,status}%s", cfg.host, cfg.port, base,
                 " (TLS)" if cfg.tls.enabled else "")

    def _new_client(self, password: str | None) -> mqtt.Client:
        """paho's client for ``cfg``: credentials, TLS, the offline will, backoff and this
        sink's callbacks (not connected yet).

        Raises:
            ConfigError: the TLS files cannot be used.
        """
        cfg = self.cfg
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311)
        if cfg.username:
            client.username_pw_set(cfg.username, password)
        if cfg.tls.enabled:
            try:
                client.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.cert_file,
                               keyfile=cfg.tls.key_file)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"sinks.mqtt.tls: {exc}") from None
            client.tls_insecure_set(cfg.tls.insecure)
        client.will_set(self.topic_status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(int(max(1, cfg.reconnect.initial_s)),
                                   int(max(1, cfg.reconnect.max_s)))
        client.max_inflight_messages_set(cfg.max_inflight)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # A registered write callback makes paho leave every write to the loop (woken
        # through its socket pair) instead of writing from the publishing thread.
        client.on_socket_register_write = _loop_writes
        return client

    # -- sink interface (pipeline's sink thread) --------------------------------------------

    def write(self, event: EmotionEvent) -> None:
        discarded = self.spool.append(self.topic_event, event.to_json())
        if discarded:
            self.discarded += discarded
            now = time.monotonic()
            if now - self._warned_full >= SPOOL_WARN_EVERY_S:
                self._warned_full = now
                log.warning("MQTT spool full (%d events): discarding the oldest; %d discarded "
                            "since start (said at most once a minute; also in /metrics and "
                            "/api/state)", self.cfg.spool_max_events, self.discarded)
        self._wake.set()

    def status(self, stats: dict) -> None:
        if self._connected.is_set():
            state = {**stats, "device": self.device, "spooled": len(self.spool),
                     "discarded": self.discarded, "ts": time.time()}
            self.client.publish(self.topic_state, json.dumps(state), qos=1, retain=True)

    def flush(self) -> None:
        """Wait briefly for the spool, and any events being published again after a
        reconnect, to drain while connected (events stay spooled if not)."""
        deadline = time.monotonic() + self.drain_s
        while ((len(self.spool) or self._replay.due) and self._connected.is_set()
               and time.monotonic() < deadline):
            self._wake.set()
            time.sleep(0.02)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self.flush()
        self._stop.set()
        self._wake.set()
        self._thread.join(2.0)
        self._closing = True
        if self._connected.is_set():
            info = self.client.publish(self.topic_status, "offline", qos=1, retain=True)
            # If the connection drops now, the broker publishes the will: "offline" too.
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(0.5)
        self.client.disconnect()  # ends the network loop
        self._net.join(2.0)
        left = len(self.spool)
        self.spool.close()
        if left:
            log.info("MQTT: %d event(s) stay spooled for the next start", left)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def replay_due(self) -> int:
        """Events acknowledged before a lost connection, still to be published again."""
        return self._replay.due

    def figures(self) -> dict:
        """What the web page and ``/metrics`` show of this sink (:meth:`Stats.publish`)."""
        return {"mqtt_connected": self.connected, "spooled": len(self.spool),
                "discarded": self.discarded}

    # -- paho callbacks (paho's network thread): flags and queues only ------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            text = str(reason)
            hint = (" (check sinks.mqtt.username and the password)"
                    if "authori" in text.lower() or "password" in text.lower() else "")
            self._say(logging.ERROR, f"refused the connection: {text}{hint}")
            return
        self._last_refusal = ""
        self._up_at = time.monotonic()
        self._connection += 1
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.topic_status, "online", qos=1, retain=True)
        if self.cfg.homeassistant_discovery:
            publish_discovery(client, self.device, self.cfg.discovery_prefix,
                              self.topic_state, self.topic_status)
        self._reset.set()
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this when the TCP or TLS connect itself failed, without saying why,
        # and keeps retrying; one plain connect tells which cause it is.
        self._say(logging.WARNING, f"cannot be reached: {connect_failure(self.cfg)}; events "
                  "stay spooled and it is retried with backoff")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self._closing:
            log.info("MQTT disconnected (stopping)")
        elif self._connected.is_set():
            now = time.monotonic()
            if now - self._up_at < _SHORT_LIVED_S:
                self._short_lived = [t for t in self._short_lived if now - t < 60.0] + [now]
            if len(self._short_lived) >= _TAKEOVERS:
                # Brokers close a session when another client connects with its id: two
                # devices with one name take it from each other, again and again.
                self._say(logging.ERROR, f"closed this connection {len(self._short_lived)} "
                          f"times in a minute, each soon after it opened: another client "
                          f"probably uses this device's client id "
                          f"({self.client_id!r}); give "
                          "every device its own 'device' name (or sinks.mqtt.client_id)")
            else:
                log.warning("MQTT disconnected (%s); events are spooled until the broker "
                            "is back", reason)
        else:
            # The connection closed before the broker accepted it: not an MQTT broker on
            # that port, a TLS/plain mismatch, or a broker that never answered CONNECT.
            self._say(logging.WARNING, f"closed the connection before accepting it ({reason}): "
                      "is it an MQTT broker on that port, and do sinks.mqtt.tls and the "
                      "broker agree on TLS? events stay spooled; retrying with backoff")
        self._connected.clear()

    def _say(self, level: int, what: str) -> None:
        """Log a connection problem once per distinct cause (not on every retry)."""
        if what != self._last_refusal:
            log.log(level, "MQTT broker %s:%d %s", self.cfg.host, self.cfg.port, what)
            self._last_refusal = what

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self._acks.put((mid, time.monotonic(), self._connection))
        self._wake.set()

    # -- network thread ---------------------------------------------------------------------

    def _network(self) -> None:
        """paho's network loop (connect, reconnect with backoff, send, receive), restarted
        after anything that ends it other than :meth:`close`; the first failure is logged
        in one line, later ones at debug level."""
        while True:
            try:
                self.client.loop_forever(retry_first_connection=True)
            except Exception as exc:
                self._network_failures += 1
                self._connected.clear()
                level = logging.ERROR if self._network_failures == 1 else logging.DEBUG
                log.log(level, "MQTT network loop failed (%s: %s); restarting it (failure %d; "
                        "events stay spooled)", type(exc).__name__, exc,
                        self._network_failures, exc_info=level == logging.DEBUG)
            if self._stop.is_set():
                return
            self._stop.wait(min(30.0, 0.5 * 2 ** min(self._network_failures, 6)))
            if self._stop.is_set():
                return
            self._reset.set()
            # Whatever state the loop was left in, connect afresh (the next loop_forever
            # closes the old socket first and retries with backoff).
            self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)

    # -- delivery thread --------------------------------------------------------------------

    def _deliver(self) -> None:
        """The delivery thread: restarted after any failure, so events never sit unsent
        behind a thread that died (the failure is logged with its traceback once)."""
        failures = 0
        while not self._stop.is_set():
            try:
                self._deliver_until_stopped()
            except Exception:
                failures += 1
                self.delivery_failures = failures
                if failures == 1:
                    log.exception("MQTT delivery failed; restarting it (events stay spooled)")
                else:
                    log.error("MQTT delivery failed again (%d times); restarting it", failures)
                self._reset.set()  # resend from the spool head: nothing in flight is trusted
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _deliver_until_stopped(self) -> None:
        # mid -> spool id (None for an event published again), topic, payload
        inflight: dict[int, tuple[int | None, str, str]] = {}
        last_sent = 0
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            if self._reset.is_set():
                self._reset.clear()
                inflight.clear()
                last_sent = 0
            self._take_acks(inflight)
            if not self._connected.is_set():
                continue
            queued = self._replay.reconnected(self._connection)
            if queued:
                log.info("MQTT: publishing again the %d event(s) acknowledged in the %g s "
                         "before the connection was lost (a broker that died may not have "
                         "kept them; consumers drop duplicates by id)", queued,
                         self.cfg.replay_s)
            room = self.cfg.max_inflight - len(inflight)
            while room > 0 and (again := self._replay.next()) is not None:
                info = self.client.publish(*again, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # disconnected meanwhile; the rest go out on the next connection
                inflight[info.mid] = (None, *again)
                self._replay.sent()
                self.replayed += 1
                room -= 1
            if room <= 0 or self._replay.due:
                continue
            for entry, topic, payload in self.spool.after(last_sent, room):
                info = self.client.publish(topic, payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # disconnected meanwhile; resent from the head after reconnect
                inflight[info.mid] = (entry, topic, payload)
                last_sent = entry

    def _take_acks(self, inflight: dict[int, tuple[int | None, str, str]]) -> None:
        """Remove what the broker acknowledged from the spool and keep it for a replay."""
        while True:
            try:
                mid, acked, connection = self._acks.get_nowait()
            except queue.Empty:
                return
            sent = inflight.pop(mid, None)
            if sent is None:
                continue  # sent on a connection before the last reset: resent from the spool
            entry, topic, payload = sent
            if entry is not None:
                self.spool.remove(entry)
                self.delivered += 1
            self._replay.acked(acked, connection, topic, payload)


def _loop_writes(*_: Any) -> None:
    """paho's write callback (client, userdata, socket): nothing to do, the network loop
    writes what is queued."""


#: A connection the broker closes within this many seconds of accepting it, ``_TAKEOVERS``
#: times in a minute, is taken as another client taking over this one's session.
_SHORT_LIVED_S = 10.0
_TAKEOVERS = 3

#: How often a full spool may say so in the log (each discard is counted regardless).
SPOOL_WARN_EVERY_S = 60.0


def from_config(cfg: Config) -> MqttSink:
    """The MQTT sink ``sinks.mqtt`` describes, spooling under ``state_dir``."""
    return MqttSink(cfg.sinks.mqtt, cfg.device, Path(cfg.state_dir))
