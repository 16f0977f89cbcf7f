"""python -m edge.bench: its plumbing (never its speed) and detection recall at the default."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from edge.bench import main as bench_main
from edge.bench import run_pipeline, sibling_models
from edge.config import load
from edge.model import EmotionClassifier

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "models/sample/astronaut.mp4")


def test_json_has_every_field(converted: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = bench_main(["--source", SAMPLE, "--model", str(converted / "emotion_int8.tflite"),
                       "--frames", "20", "--warmup", "5", "--json", str(out)])
    assert code == 0
    r = json.loads(out.read_text())
    for key in ("machine", "runtime", "model", "source", "detector", "pipeline", "peak_rss_mb"):
        assert key in r, key
    assert {"cpu", "cores", "python"} <= set(r["machine"])
    assert r["model"]["mode"] == "int8" and r["runtime"].startswith("litert")
    p = r["pipeline"]
    assert p["frames"] == 20 and p["fps"] > 0 and p["dropped"] == 0
    assert p["cpu_percent"] > 0 and r["peak_rss_mb"] > 0
    for stage in ("capture", "gray", "detect", "classify", "classify_face", "track",
                  "frame_latency"):
        s = p["stages_ms"][stage]
        assert 0 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"], stage
    assert "frames/s" in capsys.readouterr().out


def test_compare_rows_are_consistent(converted: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for mode in ("int8", "float32"):
        for suffix in (".tflite", ".json"):
            shutil.copy(converted / f"emotion_{mode}{suffix}", models)
    out = tmp_path / "bench.json"
    assert bench_main(["--source", SAMPLE, "--model", str(models / "emotion_int8.tflite"),
                       "--frames", "15", "--warmup", "3", "--compare", "--max-workers", "2",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["compare"]
    names = [r["name"] for r in rows]
    assert names[0].startswith("sequential")
    assert any("1 worker" in n for n in names) and any("2 worker(s), int8" in n for n in names)
    assert any(n.endswith("float32") for n in names)
    for r in rows:
        assert r["frames"] == 15 and r["fps"] > 0
        assert r["frames_with_face"] <= r["frames"]


def test_rate_replays_as_a_camera(converted: Path) -> None:
    cfg = load(None, {"model.path": str(converted / "emotion_int8.tflite")})
    clfs = [EmotionClassifier(cfg.model.path)]
    r = run_pipeline(cfg, SAMPLE, clfs, frames=30, warmup=0, rate=30.0)
    assert r["frames"] + r["dropped"] == 30
    assert r["wall_s"] >= 0.9  # 30 frames on a 30 fps clock take about a second


def test_no_face_is_lost_at_the_default_detection_schedule(converted: Path) -> None:
    cfg = load(None, {"model.path": str(converted / "emotion_int8.tflite")})
    assert cfg.detector.full_every > 1  # the default detects around tracked faces
    every = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, full_every=1))
    clfs = [EmotionClassifier(cfg.model.path) for _ in range(2)]
    frames = 180  # the clip twice: the loop point is a scene cut
    default = run_pipeline(cfg, SAMPLE, clfs, frames, warmup=0)
    full = run_pipeline(every, SAMPLE, clfs, frames, warmup=0)
    assert full["frames_with_face"] == frames
    assert default["frames_with_face"] == full["frames_with_face"]
    assert default["detections"]["around_faces"] > frames / 2


def test_sibling_models(tmp_path: Path) -> None:
    for name in ("emotion_int8", "emotion_float16"):
        (tmp_path / f"{name}.tflite").write_bytes(b"")
        (tmp_path / f"{name}.json").write_text("{}")
    (tmp_path / "emotion_float32.tflite").write_bytes(b"")  # no card: not offered
    found = sibling_models(tmp_path / "emotion_int8.tflite")
    assert sorted(found) == ["float16", "int8"]


def test_bad_source_exits_2(converted: Path) -> None:
    assert bench_main(["--source", "/nope.mp4", "--model",
                       str(converted / "emotion_int8.tflite")]) == 2
