"""The emotion event: the public contract of the device (JSON lines, MQTT payloads).

Nothing biometric beyond what is listed here leaves the device: no pixels, no embeddings.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, get_args

EventType = Literal["appeared", "changed", "left", "summary"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

#: JSON Schema (draft 2020-12) of one event; tests validate emitted events against it.
EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "emotion-edge event",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "ts", "device", "face", "type", "emotion", "confidence", "probs",
                 "box", "frame", "model"],
    "properties": {
        "id": {"type": "string", "minLength": 1,
               "description": "unique across restarts (<run>-<n>): de-duplicate on it"},
        "ts": {"type": "string", "format": "date-time",
               "description": "capture time of the frame, ISO 8601 UTC"},
        "device": {"type": "string", "minLength": 1},
        "face": {"type": "integer", "minimum": 1, "description": "track id, stable per face"},
        "type": {"enum": list(EVENT_TYPES)},
        "emotion": {"type": "string", "description": "smoothed dominant emotion"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "probs": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0,
                                                             "maximum": 1}},
        "box": {"type": "array", "items": {"type": "integer", "minimum": 0},
                "minItems": 4, "maxItems": 4, "description": "[x, y, w, h] in frame pixels"},
        "frame": {"type": "integer", "minimum": 0, "description": "frame sequence number"},
        "model": {"type": "string", "description": "model card id"},
        "withheld": {"enum": ["small", "blurred", "turned"],
                     "description": "present when the face's latest crop was not worth "
                                    "classifying: emotion and probs are its last reading"},
    },
}


@dataclass(frozen=True)
class EmotionEvent:
    """One event about one face.

    ``type`` says why it was emitted: the face ``appeared``, its smoothed emotion
    ``changed`` (and held), it ``left`` the view, or a periodic ``summary``.
    """

    ts: float
    device: str
    face: int
    type: EventType
    emotion: str
    confidence: float
    probs: dict[str, float]
    box: tuple[int, int, int, int]
    frame: int
    model: str
    id: str = ""  # "<run>-<n>": unique across restarts; see new_run_id()
    captured_mono: float = 0.0  # monotonic capture time, for latency; not serialised
    withheld: str | None = None  # see edge.vision.quality; serialised only when set

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see :data:`EVENT_SCHEMA`)."""
        return {
            "id": self.id,
            "ts": iso_utc(self.ts),
            "device": self.device,
            "face": self.face,
            "type": self.type,
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
            "box": [int(v) for v in self.box],
            "frame": self.frame,
            "model": self.model,
            **({"withheld": self.withheld} if self.withheld else {}),
        }

    def to_json(self) -> str:
        """One compact JSON line (no trailing newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @property
    def key(self) -> str:
        """Identity for de-duplication after a replay (``id``: unique across restarts).

        Frame and face numbers start again at every start of the service while the MQTT
        spool replays events of the run before, so they cannot identify an event.
        """
        return self.id


def new_run_id() -> str:
    """A random id for one run of the service (48 bits): the first part of every event id."""
    return secrets.token_hex(6)


def iso_utc(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-21T18:31:05.123Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
