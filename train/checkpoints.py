"""Callbacks that make a run resumable: checkpoints, state, and selection counters.

``last.keras`` and ``state.json`` are written after every epoch; early stopping's and the
plateau schedule's counters are saved there and put back on ``--resume``, so an
interrupted run continues as if it had not stopped. A run asked to stop (SIGTERM, Ctrl-C)
ends after the epoch in progress, saved.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import keras

from train.config import TrainConfig

log = logging.getLogger(__name__)


class Resumable:
    """Restores a callback's counters (``best``, ``wait``, ``cooldown``) after a resume.

    Keras resets them in ``on_train_begin``; this puts the saved ones back right after.
    """

    def __init__(self, restored: dict | None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._restored = restored

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self._restored:
            self.best, self.wait = self._restored["best"], self._restored["wait"]
            if "cooldown" in self._restored:
                self.cooldown_counter = self._restored["cooldown"]


class ResumableEarlyStopping(Resumable, keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters survive a resume."""


class ResumablePlateau(Resumable, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a resume."""


class RunState(keras.callbacks.Callback):
    """Writes ``last.keras`` and ``state.json`` after every epoch so a run can resume."""

    def __init__(self, out: Path, early: ResumableEarlyStopping | None,
                 plateau: ResumablePlateau | None, elapsed: float, since: int,
                 teacher_sha256: list[str], stream_seed: int, labels: str,
                 command: str = "") -> None:
        super().__init__()
        self.labels, self.command = labels, command
        self.out, self.early, self.plateau, self.since = out, early, plateau, since
        self.teacher_sha256, self.stream_seed = teacher_sha256, stream_seed
        self.elapsed_before = elapsed
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # Written aside and renamed, so a run killed mid-save still has the last epoch.
        saving = self.out / "last.saving.keras"
        self.model.save(saving)
        os.replace(saving, self.out / "last.keras")
        state = {
            "epoch": epoch + 1,
            "elapsed_s": round(self.elapsed(), 1),
            "early": ({"monitor": self.early.monitor, "best": float(self.early.best),
                       "wait": int(self.early.wait), "since": self.since}
                      if self.early is not None else None),
            "teacher_sha256": self.teacher_sha256,
            "stream_seed": self.stream_seed,
            "labels": self.labels,
            "dropout_rng": dropout_rng(self.model),
            "command": self.command,
        }
        if self.plateau is not None:
            state["plateau"] = {"best": float(self.plateau.best), "wait": int(self.plateau.wait),
                                "cooldown": int(self.plateau.cooldown_counter)}
        tmp = self.out / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.out / "state.json")


class StopWhenAsked(keras.callbacks.Callback):
    """Ends the run after the epoch in progress once ``asked`` is set (SIGTERM, Ctrl-C).

    Placed after :class:`RunState`, so the epoch it stops on is saved and ``--resume``
    continues from it exactly; ``stopped_after`` is that epoch (0 while running).
    """

    def __init__(self, asked: threading.Event) -> None:
        super().__init__()
        self.asked, self.stopped_after = asked, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.asked.is_set():
            self.stopped_after = epoch + 1
            self.model.stop_training = True


def _seed_states(model: keras.Model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def dropout_rng(model: keras.Model) -> list[list[int]]:
    """The dropout layers' random states, in layer order.

    ``model.save`` leaves them out (they are not weights), so a loaded model would draw
    the first epoch's dropout masks again; ``state.json`` carries them instead.
    """
    return [[int(x) for x in keras.ops.convert_to_numpy(v.value)] for v in _seed_states(model)]


def restore_dropout_rng(model: keras.Model, saved: list[list[int]] | None) -> None:
    """Put back the states :func:`dropout_rng` saved (runs from before they were saved:
    nothing to put back, the masks start over as they always did for such runs)."""
    states = _seed_states(model)
    if not saved:
        return
    if len(saved) != len(states):
        raise ValueError(f"state.json holds {len(saved)} dropout states, the model has "
                         f"{len(states)}")
    for var, value in zip(states, saved, strict=True):
        var.assign(keras.ops.convert_to_tensor(value, dtype=var.dtype))


def selection(cfg: TrainConfig, out: Path, state: dict | None, initial_epoch: int,
              selects: bool) -> tuple[list[keras.callbacks.Callback],
                                      ResumableEarlyStopping | None, ResumablePlateau | None,
                                      int]:
    """The callbacks that pick ``best.keras``, stop early and lower the learning rate.

    Returns:
        The callbacks that pick and stop (checkpoint, early stopping; none without a
        held-out split), the early-stopping and plateau callbacks (the plateau one is
        ``None`` under a cosine schedule; it goes after the CSV logger, which records the
        epoch's rate before it lowers it) and ``since``, the first epoch (0-based) that
        competes for ``best.keras``.
    """
    restored_early = state and state.get("early")
    # Runs from before the monitor was recorded selected on validation loss.
    saved_monitor = restored_early.get("monitor", "val_loss") if restored_early else cfg.monitor
    if saved_monitor != cfg.monitor:
        log.warning("monitor changed from %s to %s: best.keras and early stopping start over "
                    "from this epoch", saved_monitor, cfg.monitor)
        restored_early = None
    since = restored_early.get("since", 0) if restored_early else initial_epoch
    chosen: list[keras.callbacks.Callback] = []
    early = None
    if selects:
        # Said, not guessed: Keras guesses from the compiled metrics, which the training
        # loop (train.loop) does not use.
        mode = "max" if cfg.monitor.endswith("accuracy") else "min"
        early = ResumableEarlyStopping(restored_early, monitor=cfg.monitor, mode=mode,
                                       patience=cfg.patience, restore_best_weights=False,
                                       verbose=1)
        checkpoint = keras.callbacks.ModelCheckpoint(out / "best.keras", monitor=cfg.monitor,
                                                     mode=mode, save_best_only=True)
        if restored_early:
            # ModelCheckpoint must not overwrite a better best.keras from before the resume.
            checkpoint.best = restored_early["best"]
        chosen = [checkpoint, early]
    plateau = (ResumablePlateau(state and state.get("plateau"), monitor="val_loss", factor=0.5,
                                patience=cfg.plateau_patience, min_lr=1e-5, verbose=1)
               if cfg.lr_schedule == "plateau" else None)
    return chosen, early, plateau, since


class Progress(keras.callbacks.Callback):
    """One log line per epoch with its figures, its time and an estimate of what is left."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self._started = 0.0
        self._times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        took = time.monotonic() - self._started
        self._times.append(took)
        left = (self.epochs - epoch - 1) * sum(self._times[-3:]) / len(self._times[-3:])
        figures = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items()
                            if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
        log.info("epoch %d/%d: %s (%.0f s; about %s left)", epoch + 1, self.epochs, figures,
                 took, _duration(left))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
