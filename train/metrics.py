"""Classification metrics and the plots written next to a trained model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge.preprocessing import EMOTIONS


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro-F1 and the confusion matrix.

    Args:
        y_true: ``(N,)`` true label ids.
        y_pred: ``(N,)`` predicted label ids.

    Returns:
        A JSON-serialisable dict; ``confusion`` rows are true classes, columns predictions.
    """
    k = len(EMOTIONS)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    per_class = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(EMOTIONS)
    }
    present = support > 0
    return {
        "count": int(cm.sum()),
        "accuracy": round(float(tp.sum() / max(cm.sum(), 1)), 4),
        "macro_f1": round(float(f1[present].mean()) if present.any() else 0.0, 4),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def format_table(metrics: dict) -> str:
    """A plain-text per-class table of a :func:`classification_metrics` result."""
    lines = [f"{'class':<10}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
    absent = []
    for name, m in metrics["per_class"].items():
        if m["support"] == 0:  # no face of it to be right or wrong about
            absent.append(name)
            continue
        lines.append(
            f"{name:<10}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['support']:>9}"
        )
    if absent:
        lines.append(f"(no test faces of: {', '.join(absent)})")
    lines.append(
        f"accuracy {metrics['accuracy']:.4f}   macro-F1 {metrics['macro_f1']:.4f}   "
        f"n={metrics['count']}"
    )
    return "\n".join(lines)


def plot_confusion(confusion: list[list[int]], path: Path, title: str) -> None:
    """Save a row-normalised confusion matrix with counts as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(cm[i, j])}", ha="center", va="center",
                    fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history_csv: Path, path: Path) -> None:
    """Save loss and accuracy curves (train vs validation) from a Keras CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            col = prefix + key
            # Keras logs NA for validation figures of a run without a held-out split.
            points = [(e, float(r[col])) for e, r in zip(epochs, rows, strict=True)
                      if r.get(col, "NA") != "NA"]
            if points:
                ax.plot(*zip(*points, strict=True), style,
                        label="validation" if prefix else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
