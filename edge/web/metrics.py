"""``/metrics``: the device's figures in the Prometheus text format (prometheus-client).

Read at scrape time from the objects the pipeline already keeps (:class:`edge.stats.Stats`,
the web's :class:`~edge.web.live.LiveState`, the MQTT sink), so serving metrics adds no
work to the pipeline. Names start with ``emotion_edge_``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from edge.model import ModelCard
from edge.stats import BUCKETS_S, Stats
from edge.web.live import LiveState

#: Prometheus' own content type for the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DeviceCollector:
    """Collects counters, gauges and stage-latency histograms at scrape time.

    Args:
        stats: the pipeline's figures.
        live: the web page's state (events by type and emotion).
        card: the model's card (id, mode, accuracy).
    """

    def __init__(self, stats: Stats, live: LiveState, card: ModelCard) -> None:
        self.stats, self.live, self.card = stats, live, card

    def collect(self) -> Iterator[Metric]:
        snap = self.stats.snapshot()
        c, g = snap["counters"], snap["gauges"]
        for name, key, text in (
                ("frames", "frames", "Frames processed"),
                ("faces_detected", "faces_detected", "Face detections, all frames"),
                ("frames_with_face", "frames_with_face", "Frames with at least one face"),
                ("source_errors", "source_errors", "Source failures (each retry counts)"),
                ("source_reconnects", "source_reconnects", "Times a lost source came back")):
            yield CounterMetricFamily(f"emotion_edge_{name}", text, value=c.get(key, 0))
        yield CounterMetricFamily("emotion_edge_frames_dropped",
                                  "Frames dropped because the pipeline was behind (live)",
                                  value=int(g.get("dropped", 0) or 0))
        events = CounterMetricFamily("emotion_edge_events", "Events emitted",
                                     labels=["type", "emotion"])
        for (kind, emotion), n in sorted(self.live.counts.copy().items()):
            events.add_metric([kind, emotion], n)
        yield events
        yield GaugeMetricFamily("emotion_edge_faces_in_view", "Confirmed faces in view",
                                value=int(g.get("faces", 0) or 0))
        by_emotion = GaugeMetricFamily(
            "emotion_edge_faces_by_emotion",
            "Faces in view by their reported emotion (the fleet's dominant-emotion share)",
            labels=["emotion"])
        for emotion, n in self.live.faces_by_emotion().items():
            by_emotion.add_metric([emotion], n)
        yield by_emotion
        yield GaugeMetricFamily("emotion_edge_fps", "Frames per second (last 5 s)",
                                value=snap["fps"])
        yield GaugeMetricFamily("emotion_edge_source_up", "1 while the source delivers",
                                value=0 if g.get("source") == "down" else 1)
        mqtt = self.stats.published().get("mqtt")
        if mqtt is not None:
            yield from self._mqtt_metrics(mqtt)
        yield self._stage_histograms()
        yield self._model_info()

    @staticmethod
    def _mqtt_metrics(mqtt: dict) -> Iterator[Metric]:
        """The MQTT sink's connection, spool depth and discards (its published figures)."""
        yield GaugeMetricFamily("emotion_edge_mqtt_connected", "1 while connected",
                                value=1 if mqtt["mqtt_connected"] else 0)
        yield GaugeMetricFamily("emotion_edge_mqtt_spool_events",
                                "Events waiting on disk for the broker", value=mqtt["spooled"])
        yield CounterMetricFamily("emotion_edge_mqtt_discarded_events",
                                  "Events dropped from a full spool (oldest first)",
                                  value=mqtt["discarded"])

    def _stage_histograms(self) -> Metric:
        hist = HistogramMetricFamily("emotion_edge_stage_seconds",
                                     "Time per pipeline stage", labels=["stage"])
        for stage, (counts, total) in sorted(self.stats.histograms().items()):
            running, buckets = 0, []
            for bound, n in zip((*BUCKETS_S, float("inf")), counts, strict=True):
                running += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            hist.add_metric([stage], buckets, sum_value=total)
        return hist

    def _model_info(self) -> Metric:
        info = InfoMetricFamily("emotion_edge_model", "The model in use (from its card)")
        info.add_metric([], {"id": self.card.id, "mode": self.card.mode,
                             **{k: "" if v is None else str(v)
                                for k, v in self.card.accuracies().items()}})
        return info


def make_registry(collector: DeviceCollector) -> CollectorRegistry:
    """A registry of the device's metrics and this process's (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)
