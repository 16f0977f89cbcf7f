"""JSON-lines log (rotation, durability) and stdout sinks."""

from __future__ import annotations

import io
import json
from pathlib import Path

from edge.events import EmotionEvent
from edge.preprocessing import EMOTIONS
from edge.sinks.log import JsonLinesSink
from edge.sinks.stdout import StdoutSink


def event(i: int) -> EmotionEvent:
    """Events 10..99 all serialise to the same length."""
    return EmotionEvent(ts=1_800_000_000.0 + i, device="d", face=1, type="changed",
                        emotion="sad", confidence=0.6, probs=dict.fromkeys(EMOTIONS, 0.1),
                        box=(0, 0, 10, 10), frame=i, model="m", id=f"r-{i}")


def frames_in(path: Path) -> list[int]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines()]


def test_rotates_by_size_and_keeps_every_event_up_to_the_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    line_len = len(event(10).to_json()) + 1
    sink = JsonLinesSink(path, max_bytes=line_len * 10, backups=2)
    for i in range(10, 35):
        sink.write(event(i))
    sink.close()
    assert frames_in(path.with_name("events.jsonl.2")) == list(range(10, 20))
    assert frames_in(path.with_name("events.jsonl.1")) == list(range(20, 30))
    assert frames_in(path) == list(range(30, 35))
    assert path.stat().st_size <= line_len * 10


def test_appends_across_restarts_and_drops_oldest_backup(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    line_len = len(event(10).to_json()) + 1
    for start in (10, 15):
        sink = JsonLinesSink(path, max_bytes=line_len * 10, backups=1)
        for i in range(start, start + 5):
            sink.write(event(i))
        sink.close()
    assert frames_in(path) == list(range(10, 20))
    sink = JsonLinesSink(path, max_bytes=line_len * 10, backups=1)
    for i in range(20, 35):
        sink.write(event(i))
    sink.close()
    assert frames_in(path.with_name("e.jsonl.1")) == list(range(20, 30))
    assert frames_in(path) == list(range(30, 35))
    assert not path.with_name("e.jsonl.2").exists()


def test_each_line_is_on_disk_before_close(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    sink = JsonLinesSink(path)
    sink.write(event(13))
    assert frames_in(path) == [13]  # readable by another process right away
    sink.close()
    sink.close()  # twice is fine


def test_stdout_sink() -> None:
    out = io.StringIO()
    sink = StdoutSink(out)
    sink.write(event(11))
    sink.write(event(12))
    sink.close()
    assert [json.loads(x)["frame"] for x in out.getvalue().splitlines()] == [11, 12]
