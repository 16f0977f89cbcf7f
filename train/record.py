"""The record a run leaves: ``metrics.json``, the confusion matrix and the curves.

Everything needed to say what a model is and how it was made: data and its sha256, the
command, the seeds, the machine, the parent and teachers with their own records, and the
scores on the held-out and test splits (against the FER+ majority too, given the votes).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from edge.model_files import sha256_of
from edge.runtime import sysinfo
from train import faceset, ferplus
from train.config import TrainConfig
from train.metrics import classification_metrics, format_table, plot_confusion, plot_curves

log = logging.getLogger(__name__)


def write_record(cfg: TrainConfig, best: keras.Model, *, params: int, macs: int,
                 wall: float, since: int, stream_seed: int, val_set: faceset.FaceSet | None,
                 test: faceset.FaceSet | None, teacher_record: dict | None,
                 replicas: int = 1, workers: int = 1) -> dict:
    """Score ``best``, write ``metrics.json``, the plots, and return the record."""
    out = Path(cfg.out)
    selects = val_set is not None
    epochs_done = _epochs_in(out / "history.csv")
    result = {
        "arch": cfg.arch,
        "params": params,
        "macs": macs,
        "epochs": epochs_done,
        "best_epoch": (_best_epoch(out / "history.csv", cfg.monitor, since) if selects
                       else epochs_done),
        "selection": (f"best {cfg.monitor} on the held-out split" if selects
                      else "last epoch (no held-out split: all Training faces trained on)"),
        "wall_time_s": round(wall, 1),
        "seed": cfg.seed,
        "stream_seed": stream_seed,
        "data": str(cfg.data),
        "data_sha256": sha256_of(cfg.data),
        "labels": cfg.labels,
        **({"ferplus": {"votes": cfg.ferplus, "sha256": sha256_of(cfg.ferplus),
                        **({"weight": cfg.ferplus_weight} if cfg.labels == "mixed" else {})}}
           if cfg.ferplus else {}),
        "command": cfg.command,
        "config": _jsonable(asdict(cfg)),
        "replicas": {"count": replicas, "workers": workers,
                     "global_batch": cfg.batch_size * replicas,
                     "peak_learning_rate": cfg.learning_rate * replicas},
        "machine": sysinfo.machine(("tensorflow", "tensorflow-cpu", "keras", "numpy")),
        **({"init_from": parent_summary(Path(cfg.init_from))} if cfg.init_from else {}),
        **({"teachers": teacher_record} if teacher_record else {}),
        "validation": (classification_metrics(val_set.labels, predict(best, val_set.images))
                       if val_set is not None else None),
    }
    if test is not None:
        _score_test(cfg, best, test, result)
        plot_confusion(result["test"]["confusion"], out / "confusion_matrix.png",
                       f"{cfg.arch} on {cfg.test_usage} "
                       f"(accuracy {result['test']['accuracy']:.3f})")
    elif selects:
        plot_confusion(result["validation"]["confusion"], out / "confusion_matrix.png",
                       f"{cfg.arch} on held-out validation")
    plot_curves(out / "history.csv", out / "curves.png")
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    log.info("wrote %s (wall time %.0f s)", out / "metrics.json", wall)
    return result


def _score_test(cfg: TrainConfig, best: keras.Model, test: faceset.FaceSet, result: dict) -> None:
    """The test split's scores: FER-2013 labels, and the FER+ majority given the votes."""
    result["test_usage"] = cfg.test_usage
    predicted = predict(best, test.images)
    result["test"] = classification_metrics(test.labels, predicted)
    log.info("%s, %s:\n%s", test.source, test.labelled_by, format_table(result["test"]))
    if cfg.ferplus:
        result["test_ferplus"] = ferplus.majority_metrics(
            ferplus.load_votes(cfg.ferplus, test, cfg.test_usage), predicted)
        log.info("%s, every face's plain FER+ majority (%d faces): accuracy %.4f; %s",
                 cfg.test_usage, result["test_ferplus"]["count"],
                 result["test_ferplus"]["accuracy"],
                 ferplus.paper_line(result["test_ferplus"]["paper"]))


def parent_summary(source: Path) -> dict:
    """A model this run started from or learnt from, with its run's own record if present."""
    summary: dict = {"model": str(source), "sha256": sha256_of(str(source))}
    metrics = source.parent / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        summary.update({k: m[k] for k in ("command", "epochs", "best_epoch", "wall_time_s")
                        if k in m})
        if "test" in m:
            summary["test_accuracy"] = m["test"]["accuracy"]
    return summary


def predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Top class of each ``(N, 48, 48)`` uint8 face."""
    probs = model.predict(images[..., None].astype(np.float32), batch_size=256, verbose=0)
    return np.argmax(probs, axis=1)


def _epochs_in(history_csv: Path) -> int:
    with history_csv.open() as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def _best_epoch(history_csv: Path, monitor: str, since: int) -> int:
    with history_csv.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) >= since]
    if monitor == "val_accuracy":
        best = max(rows, key=lambda r: float(r[monitor]))
    else:
        best = min(rows, key=lambda r: float(r[monitor]))
    return int(best["epoch"]) + 1


def _jsonable(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_jsonable(v) for v in obj]
    return obj
