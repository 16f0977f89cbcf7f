"""The web routes: the live page, the photo page, the JSON API and ``/metrics``.

Every route but ``/api/health`` needs the token when one is configured: an
``Authorization: Bearer <token>`` header, or ``?token=<token>`` once in a browser, which
then keeps it in an HttpOnly cookie. Errors are JSON (``{"error": ...}``) with a 4xx
status, never a traceback.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from edge.capture.image_files import MAX_PIXELS, header_size
from edge.config import WebConfig
from edge.model import ModelCard
from edge.stats import Stats
from edge.web.live import LiveState, blank_jpeg
from edge.web.metrics import CONTENT_TYPE, render

STATIC = Path(__file__).resolve().parent / "static"
_COOKIE = "emotion_edge_token"


@dataclass
class WebParts:
    """What the routes read: built by :func:`edge.web.server.start_web`."""

    cfg: WebConfig
    live: LiveState
    card: ModelCard
    registry: Any  # prometheus_client.CollectorRegistry
    predict: Callable[[np.ndarray], list[dict]]  # faces in a BGR image
    token: str | None
    device: str
    stats: Stats
    mqtt: Any | None = None  # the MQTT sink, when enabled


def create_app(parts: WebParts) -> Flask:
    """The Flask application serving ``parts``."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = parts.cfg.upload_max_bytes
    predict_lock = threading.Lock()  # one detector/classifier pair for uploads

    @app.before_request
    def check_token() -> Response | None:
        if parts.token is None or request.path == "/api/health":
            return None
        given = (request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                 or request.args.get("token") or request.cookies.get(_COOKIE) or "")
        if not hmac.compare_digest(given.encode(), parts.token.encode()):
            return _error(401, "missing or wrong token: send 'Authorization: Bearer "
                               "<token>' or open the page once with ?token=<token>")
        return None

    @app.after_request
    def remember_token(response: Response) -> Response:
        if parts.token is not None and request.args.get("token") == parts.token:
            response.set_cookie(_COOKIE, parts.token, httponly=True, samesite="Strict")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return _error(413, f"upload too large: at most {parts.cfg.upload_max_bytes:,} "
                               "bytes (web.upload_max_bytes)")
        return _error(exc.code or 500, exc.description or exc.name)

    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC, "index.html")

    @app.get("/predict")
    def predict_page() -> Response:
        return send_from_directory(STATIC, "predict.html")

    @app.get("/static/<path:name>")
    def static_file(name: str) -> Response:
        return send_from_directory(STATIC, name)

    @app.get("/api/health")
    def health() -> Response:
        source = _status(parts)["source"]
        ok = source != "down" and not parts.live.closed
        return jsonify({"ok": ok, "source": source}), (200 if ok else 503)

    @app.get("/api/state")
    def state() -> Response:
        snap = parts.live.snapshot()
        snap["status"] = _status(parts)
        return jsonify({"device": parts.device, "time": time.time(),
                        "preview": parts.cfg.preview, "model": _model(parts.card), **snap})

    @app.get("/api/events")
    def events() -> Response:
        return jsonify({"events": parts.live.events_since(request.args.get("since"))})

    @app.get("/api/events/stream")
    def event_stream() -> Response:
        # A browser that reconnects sends the last id it saw; a first visit gets the kept
        # events first, then each new one.
        since = request.headers.get("Last-Event-ID") or request.args.get("since")
        return Response(_sse(parts.live, since), mimetype="text/event-stream",
                        headers={"X-Accel-Buffering": "no"})

    @app.get("/stream.mjpg")
    def stream() -> Response:
        if not parts.cfg.preview:
            return _error(404, "the live view is off (web.preview: false): no camera "
                               "pixels are served")
        return Response(_mjpeg(parts.live, parts.cfg.preview_fps),
                        mimetype="multipart/x-mixed-replace; boundary=frame")

    @app.post("/api/predict")
    def predict() -> Response:
        upload = request.files.get("photo")
        data = upload.read() if upload is not None else request.get_data()
        if not data:
            return _error(400, "no photo: send it as the form field 'photo' or as the body")
        size = header_size(data[:65536])
        if size is not None and size[0] * size[1] > MAX_PIXELS:
            return _error(413, f"{size[0]}x{size[1]} pixels is above the limit of "
                               f"{MAX_PIXELS:,}")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return _error(400, "not an image this device can read (JPEG, PNG, BMP, WebP...)")
        with predict_lock:
            faces = parts.predict(image)
        return jsonify({"faces": faces, "width": int(image.shape[1]),
                        "height": int(image.shape[0]), "model": parts.card.id})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render(parts.registry), mimetype=CONTENT_TYPE)

    return app


def _status(parts: WebParts) -> dict:
    """The device's state now, from the pipeline's own figures."""
    snap = parts.stats.snapshot()
    c, g = snap["counters"], snap["gauges"]
    status = {"fps": snap["fps"], "source": g.get("source", "ok"),
              "frames": c.get("frames", 0), "dropped": g.get("dropped", 0),
              "events": c.get("events", 0), "uptime_s": snap["uptime_s"]}
    if parts.mqtt is not None:
        status.update(mqtt_connected=parts.mqtt.connected, spooled=len(parts.mqtt.spool))
    return status


def _model(card: ModelCard) -> dict:
    return {"id": card.id, "mode": card.mode, **card.accuracies()}


def _error(code: int, message: str) -> Response:
    response = jsonify({"error": message, "status": code})
    response.status_code = code
    return response


def _sse(live: LiveState, since: str | None) -> Iterator[str]:
    """Server-sent events: the kept events after ``since``, then each new one as it
    happens, and a comment every 15 s while nothing happens."""
    serial, new = live.backlog(since)
    yield ": connected\n\n"
    while True:
        for event in new:
            yield f"id: {event['id']}\nevent: emotion\ndata: {json.dumps(event)}\n\n"
        if live.closed:
            return
        serial, new = live.wait_events(serial, 15.0)
        if not new:
            yield ": keep-alive\n\n"


def _mjpeg(live: LiveState, fps: float) -> Iterator[bytes]:
    """The annotated live view as multipart JPEG, at most ``fps`` frames a second.

    Frames are encoded here, in the request's own thread, and only while it is open.
    """
    last, period = -1, 1.0 / fps
    part = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"
    yield part + blank_jpeg() + b"\r\n"
    while not live.closed:
        started = time.monotonic()
        last, jpeg = live.jpeg(last)
        if jpeg is not None:
            yield part + jpeg + b"\r\n"
        time.sleep(max(0.0, period - (time.monotonic() - started)))
