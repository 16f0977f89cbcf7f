"""Many devices watched as one: the fleet's MQTT consumer and its Prometheus recipe.

Runs on a server, not on a device; it needs only what ``pip install .[edge]`` brings
(paho-mqtt).
"""
