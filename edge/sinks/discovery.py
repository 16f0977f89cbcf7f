"""Home Assistant MQTT discovery: the device's sensors announced under the discovery prefix
(dominant emotion, faces in view, frame rate), available while its status is online."""

from __future__ import annotations

import json
from typing import Any


def publish_discovery(client: Any, device: str, discovery_prefix: str, topic_state: str,
                      topic_status: str) -> None:
    """Publish (retained) one discovery config per sensor of ``device``."""
    node = f"emotion_edge_{device}".replace("-", "_")
    card = {"identifiers": [node], "name": f"Emotion {device}",
            "model": "emotion-edge", "manufacturer": "emotion-edge"}
    sensors = {
        "dominant_emotion": {"name": "Dominant emotion",
                             "value_template": "{{ value_json.dominant or 'none' }}",
                             "icon": "mdi:emoticon-outline"},
        "faces": {"name": "Faces in view", "value_template": "{{ value_json.faces }}",
                  "state_class": "measurement", "icon": "mdi:account-multiple"},
        "fps": {"name": "Frame rate", "value_template": "{{ value_json.fps }}",
                "unit_of_measurement": "fps", "state_class": "measurement",
                "entity_category": "diagnostic"},
    }
    for key, extra in sensors.items():
        config = {"unique_id": f"{node}_{key}", "object_id": f"{node}_{key}",
                  "state_topic": topic_state, "availability_topic": topic_status,
                  "payload_available": "online", "payload_not_available": "offline",
                  "device": card, **extra}
        client.publish(f"{discovery_prefix}/sensor/{node}/{key}/config", json.dumps(config),
                       qos=1, retain=True)
