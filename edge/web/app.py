"""The web routes: the live page, the photo page, the JSON API and ``/metrics``.

Every route but ``/api/health`` needs the token when one is configured: an
``Authorization: Bearer <token>`` header, or ``?token=<token>`` once in a browser, which
then keeps it in an HttpOnly cookie. Errors are JSON (``{"error": ...}``) with a 4xx
status, never a traceback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from edge.capture.image_files import ImageError, decode_image, give_back_memory
from edge.config import WebConfig
from edge.model import ModelCard
from edge.stats import Stats
from edge.web.guard import COOKIE, TokenGuard
from edge.web.live import LiveState, blank_jpeg
from edge.web.metrics import CONTENT_TYPE, render

STATIC = Path(__file__).resolve().parent / "static"

#: Live views and event streams open at once; each holds an HTTP thread while open, so
#: the rest of the threads stay free for the API, /metrics and /api/health.
MAX_STREAMS = 8

#: Sent with every response: the pages use only the device's own scripts and styles.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data: blob:; "
                                "object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

#: Photo uploads handled at once (one decoding, the next waiting); more get 503.
UPLOADS_AT_ONCE = 2

#: Largest uploaded photo decoded, in pixels: a 24-megapixel camera's, 72 MB as BGR.
UPLOAD_MAX_PIXELS = 24_000_000


@dataclass
class WebParts:
    """What the routes read: built by :func:`edge.web.server.start_web`."""

    cfg: WebConfig
    live: LiveState
    card: ModelCard
    registry: Any  # prometheus_client.CollectorRegistry
    predict: Callable[[np.ndarray], list[dict]]  # faces in a BGR image
    guard: TokenGuard
    device: str
    stats: Stats


def create_app(parts: WebParts) -> Flask:
    """The Flask application serving ``parts``."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = parts.cfg.upload_max_bytes
    _guard(app, parts)
    _pages(app)
    _api(app, parts)
    _photos(app, parts)
    return app


def _guard(app: Flask, parts: WebParts) -> None:
    """What every request passes first, and what every answer carries."""
    hosts = allowed_hosts(parts.cfg)

    @app.before_request
    def check_request() -> Response | None:
        # DNS rebinding: a page of another site, resolved to this device, must not read it.
        host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
        if hosts is not None and host not in hosts:
            return _error(400, f"Host '{host}' is not this device's: use "
                               f"{parts.cfg.bind} or localhost, or add it to web.hosts")
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None \
                and urlsplit(origin).netloc.lower() != (request.host or "").lower():
            return _error(403, f"cross-site request from {origin} refused")
        refused = parts.guard.refusal(
            request.remote_addr or "?", request.path, request.headers.get("Authorization", ""),
            request.args.get("token", ""), request.cookies.get(COOKIE, ""))
        return _error(*refused) if refused else None

    @app.after_request
    def remember_token(response: Response) -> Response:
        if parts.guard.is_token(request.args.get("token")):
            # A value derived from the token, never the token: browsers send a cookie to
            # every port of the host.
            response.set_cookie(COOKIE, str(parts.guard.session), httponly=True,
                                samesite="Strict")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return _error(413, f"upload too large: at most {parts.cfg.upload_max_bytes:,} "
                               "bytes (web.upload_max_bytes)")
        return _error(exc.code or 500, exc.description or exc.name)


def _pages(app: Flask) -> None:
    """The live page, the photo page and their scripts and styles."""

    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC, "index.html")

    @app.get("/predict")
    def predict_page() -> Response:
        return send_from_directory(STATIC, "predict.html")

    @app.get("/static/<path:name>")
    def static_file(name: str) -> Response:
        return send_from_directory(STATIC, name)


def _api(app: Flask, parts: WebParts) -> None:
    """Health, state, events (kept and streamed), the live view and ``/metrics``."""
    streams = threading.BoundedSemaphore(MAX_STREAMS)

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
        since = request.args.get("since")
        if since and not parts.live.since_is_valid(since):
            return _error(400, "since: give an event id seen last (e.g. 3f9c2a71b0d4-12) or "
                               "an ISO 8601 time (e.g. 2026-12-07T10:00:00Z)")
        return jsonify({"events": parts.live.events_since(since)})

    @app.get("/api/events/stream")
    def event_stream() -> Response:
        # A browser that reconnects sends the last id it saw; a first visit gets the kept
        # events first, then each new one.
        since = request.headers.get("Last-Event-ID") or request.args.get("since")
        if request.method == "HEAD":  # the headers alone: no slot, no body
            return Response(mimetype="text/event-stream")
        if not streams.acquire(blocking=False):
            return _busy()
        return Response(_released(_sse(parts.live, since), streams),
                        mimetype="text/event-stream", headers={"X-Accel-Buffering": "no"})

    @app.get("/stream.mjpg")
    def stream() -> Response:
        if not parts.cfg.preview:
            return _error(404, "the live view is off (web.preview: false): no camera "
                               "pixels are served")
        if request.method == "HEAD":
            return Response(mimetype="multipart/x-mixed-replace; boundary=frame")
        if not streams.acquire(blocking=False):
            return _busy()
        return Response(_released(_mjpeg(parts.live, parts.cfg.preview_fps), streams),
                        mimetype="multipart/x-mixed-replace; boundary=frame")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render(parts.registry), mimetype=CONTENT_TYPE)


def _photos(app: Flask, parts: WebParts) -> None:
    """``POST /api/predict``: the faces and emotions of an uploaded photo."""
    predict_lock = threading.Lock()  # one detector/classifier pair for uploads
    uploads = threading.BoundedSemaphore(UPLOADS_AT_ONCE)

    @app.post("/api/predict")
    def predict() -> Response:
        # A photo waiting its turn holds an HTTP thread and its bytes: past a few, the
        # client is told to come back, and the API, /metrics and health keep their threads.
        if not uploads.acquire(blocking=False):
            response = _error(503, f"{UPLOADS_AT_ONCE} photos are being read already; "
                                   "send this one again in a few seconds")
            response.headers["Retry-After"] = "2"
            return response
        try:
            return read_photo()
        finally:
            uploads.release()

    def read_photo() -> Response:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("photo")
            data = upload.read() if upload is not None else b""
        else:
            data = _raw_body()
        if not data:
            return _error(400, "no photo: send it as the form field 'photo' or as the body")
        # One decode at a time, each bounded before it starts (edge.capture.image_files):
        # a device with 1 GB of RAM survives two image bombs at once.
        with predict_lock:
            try:
                image = decode_image(data, "photo", cv2.IMREAD_COLOR, UPLOAD_MAX_PIXELS)
            except ImageError as exc:
                return _error(413 if exc.too_large else 400, str(exc))
            faces = parts.predict(image)
            width, height = int(image.shape[1]), int(image.shape[0])
            del image, data
            give_back_memory()  # a large photo's pages go back to the system, not the heap
        return jsonify({"faces": faces, "width": width, "height": height,
                        "model": parts.card.id})


def allowed_hosts(cfg: WebConfig) -> set[str] | None:
    """The ``Host`` names a request may carry: the bound address, this machine's names and
    ``web.hosts``; ``None`` (any) when bound to every address, where the token guards."""
    extra = {h.strip().lower() for h in cfg.hosts.split(",") if h.strip()}
    if cfg.bind in ("0.0.0.0", "::", "") and not extra:
        return None
    return {cfg.bind.lower(), "localhost", "127.0.0.1", "::1"} | extra


def _busy() -> Response:
    return _error(503, f"{MAX_STREAMS} live views and event streams are open already; "
                       "close one (the API, /metrics and /api/health still answer)")


class _Released:
    """A stream's body that gives its slot back when the server closes it: when the
    client goes, the server stops, or the body was never read at all (a generator that
    never started would never reach its ``finally``, and its slot would stay taken)."""

    def __init__(self, chunks: Iterator[Any], streams: threading.BoundedSemaphore) -> None:
        self._chunks, self._streams = chunks, streams
        self._lock = threading.Lock()
        self._open = True

    def __iter__(self) -> Iterator[Any]:
        return self._chunks

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._streams.release()


def _released(chunks: Iterator[Any], streams: threading.BoundedSemaphore) -> _Released:
    """``chunks``, giving the stream's slot back when the response is closed."""
    return _Released(chunks, streams)


def _raw_body() -> bytes:
    """The request body as sent, whatever its content type (``curl --data-binary`` sends
    a photo as a form-encoded body, which Flask would otherwise parse as fields)."""
    return request.get_data(cache=False, as_text=False, parse_form_data=False)


def _status(parts: WebParts) -> dict:
    """The device's state now, from the pipeline's own figures."""
    status = parts.stats.status()
    for figures in parts.stats.published().values():  # the MQTT sink's, when enabled
        status.update(figures)
    return status


def _model(card: ModelCard) -> dict:
    return {"id": card.id, "mode": card.mode, **card.accuracies()}


def _error(code: int, message: str) -> Response:
    response = jsonify({"error": message, "status": code})
    response.status_code = code
    return response


def _sse(live: LiveState, since: str | None) -> Iterator[str]:
    """Server-sent events: the kept events after ``since``, then each new one as it
    happens, and a comment every 2 s while nothing happens (so a client that has gone is
    noticed, and its slot freed, within seconds)."""
    serial, new = live.backlog(since)
    yield ": connected\n\n"
    while True:
        for event in new:
            yield f"id: {event['id']}\nevent: emotion\ndata: {json.dumps(event)}\n\n"
        if live.closed:
            return
        serial, new = live.wait_events(serial, 2.0)
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
