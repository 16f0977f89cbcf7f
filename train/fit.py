"""One training run: data -> model -> checkpoints, logs, plots and ``metrics.json``.

The run folder holds everything needed to resume (``last.keras`` + ``state.json``, written
every epoch) and everything worth keeping (``best.keras``, ``history.csv``, ``curves.png``,
``confusion_matrix.png``, ``metrics.json``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.model_files import sha256_of
from edge.preprocessing import EMOTIONS
from train import (
    checkpoints,
    distill,
    faceset,
    ferplus,
    loop,
    presets,
    quant_aware,
    record,
    resume,
    strategy,
    warm_start,
)
from train import data as datasets
from train.config import TrainConfig
from train.inputs import make_dataset, steps_per_epoch

log = logging.getLogger(__name__)


def make_optimizer(name: str,
                   lr: float | keras.optimizers.schedules.LearningRateSchedule,
                   weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """The optimizer a run trains with.

    Args:
        name: ``adam`` (AdamW when ``weight_decay`` is set) or ``sgd`` (Nesterov momentum
            0.9, the classic choice for VGG-style image classifiers; it needs a learning
            rate tuned for it, not Adam's).
        lr: peak learning rate or a schedule.
        weight_decay: decoupled weight decay per step, scaled by the learning rate; 0 for none.

    Raises:
        ValueError: an unknown name or a negative decay.
    """
    if weight_decay < 0:
        raise ValueError("weight_decay must be >= 0")
    if name == "adam":
        return (keras.optimizers.AdamW(lr, weight_decay=weight_decay) if weight_decay
                else keras.optimizers.Adam(lr))
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True,
                                    weight_decay=weight_decay or None)
    raise ValueError(f"optimizer: unknown '{name}'; use adam or sgd")


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Per-class loss weights: ``balanced`` (inverse frequency), ``sqrt`` (its square root)."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(float)
    w = len(labels) / (len(EMOTIONS) * np.maximum(counts, 1))
    if mode == "sqrt":
        w = np.sqrt(w)
    elif mode != "balanced":
        raise ValueError(f"class_weight: unknown mode '{mode}'; use none, balanced or sqrt")
    return {i: float(v) for i, v in enumerate(w)}


def run(cfg: TrainConfig, stop: threading.Event | None = None) -> dict:
    """Train per ``cfg`` and write all artefacts to ``cfg.out``; returns the metrics dict.

    Once ``stop`` is set the run ends after the epoch in progress, resumable with
    ``--resume``; the dict is then ``{"stopped_after": epoch}``.
    """
    # First: a multi-worker strategy must set up before TensorFlow does anything else.
    scale = strategy.Replicas.for_name(cfg.distribute)
    with contextlib.ExitStack() as stack:
        # Only the chief writes the run folder; another worker's callbacks (which must
        # run on every worker, to stop on the same epoch) write to a scratch folder.
        work = None if scale.chief else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="train-worker-")))
        result = _run(cfg, scale, work, stop or threading.Event())
        scale.barrier()  # every worker ends together, after the chief has written
        return result


def _run(cfg: TrainConfig, scale: strategy.Replicas, work: Path | None,
         stop: threading.Event) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    work = work or out
    state = resume.saved_state(cfg, out)
    stream_seed = _seeded(cfg, state)
    # Loaded (and its preset checked) before the data and teachers, to fail fast.
    with scale.scope():
        resumed = (resume.resumed_model(out / "last.keras", cfg.arch, cfg.quantize_aware)
                   if state is not None else None)
    if cfg.quantize_aware and not (cfg.init_from or resumed):
        raise warm_start.InitFromError("quantize_aware fine-tunes a trained model: pass "
                                       "init_from")

    splits, train_all = _faces(cfg)
    train_set, val_set = _split(train_all, cfg)
    log.info("train %d faces, validation %d faces", len(train_set),
             len(val_set) if val_set is not None else 0)

    initial_epoch = int(state["epoch"]) if state is not None else 0
    batch = cfg.batch_size * scale.count  # --batch-size is per replica
    steps = steps_per_epoch(len(train_set), batch)
    if state is not None:
        resume.refuse_other_teachers(state, cfg.teachers, out)
    teacher_record, targets = (_teacher_targets(cfg, train_set)
                               if cfg.teachers else (None, train_set.targets))
    train_ds, val_ds = _datasets(cfg, train_set, targets, val_set, batch, stream_seed,
                                 initial_epoch)
    if resumed is not None:
        model = resumed
        checkpoints.restore_dropout_rng(model, state.get("dropout_rng"))
        log.info("resuming %s at epoch %d", out / "last.keras", initial_epoch)
    else:
        with scale.scope():
            model = _new_model(cfg, cfg.epochs * steps, cfg.learning_rate * scale.count)
    params, macs = _describe(model, cfg.arch)
    hooks = _hooks(cfg, work, state, initial_epoch, val_set is not None, train_all,
                   teacher_record, stream_seed, stop)
    until = min(cfg.epochs, cfg.stop_after) if cfg.stop_after else cfg.epochs
    loop.fit(model, scale.strategy, train_ds, val_ds, epochs=until,
             initial_epoch=initial_epoch, steps=steps, global_batch=batch,
             class_weight=class_weights(train_set.labels, cfg.class_weight),
             callbacks=hooks.all)

    if work != out:
        log.info("worker done; the chief writes %s", out)
        return {}
    stopped = hooks.asked.stopped_after or until
    if stopped < cfg.epochs and not (hooks.early and hooks.early.stopped_epoch):
        return _sitting_ended(cfg, stopped)
    if scale.count > 1:
        log.info("trained on %d replicas (%d worker(s)): global batch %d, peak learning "
                 "rate %g", scale.count, scale.workers, batch, cfg.learning_rate * scale.count)
    return record.write_record(cfg, _final_model(cfg, out, val_set is not None), params=params,
                               macs=macs, wall=hooks.run_state.elapsed(), since=hooks.since,
                               stream_seed=stream_seed, val_set=val_set,
                               test=splits.get(cfg.test_usage) if cfg.test_usage else None,
                               teacher_record=teacher_record, replicas=scale.count,
                               workers=scale.workers)


@dataclass
class _Hooks:
    """The run's callbacks, and those whose state the run reads after it."""

    all: list[keras.callbacks.Callback]
    run_state: checkpoints.RunState
    early: Any  # checkpoints.ResumableEarlyStopping, None without a held-out split
    since: int
    asked: checkpoints.StopWhenAsked


def _hooks(cfg: TrainConfig, work: Path, state: dict | None, initial_epoch: int,
           selected: bool, train_all: faceset.FaceSet, teacher_record: dict | None,
           stream_seed: int, stop: threading.Event) -> _Hooks:
    """Selection, logging, progress, checkpoints and the stop on request, in their order."""
    selecting, early, plateau, since = checkpoints.selection(cfg, work, state, initial_epoch,
                                                             selected)
    run_state = checkpoints.RunState(
        work, early, plateau, state["elapsed_s"] if state else 0.0, since,
        [t["sha256"] for t in teacher_record["models"]] if teacher_record else [],
        stream_seed, cfg.labels, cfg.command)
    asked = checkpoints.StopWhenAsked(stop)
    return _Hooks([
        *_recalibrate(cfg, train_all),
        *selecting,
        keras.callbacks.CSVLogger(work / "history.csv", append=state is not None),
        *([plateau] if plateau else []),
        checkpoints.Progress(cfg.epochs),
        run_state,  # after the others, so the counters it saves are this epoch's
        asked,  # after run_state: the epoch it stops on is saved
    ], run_state, early, since, asked)


def _seeded(cfg: TrainConfig, state: dict | None) -> int:
    """Seed Keras for the run (or its resumed part) and set its precision; returns the
    stream seed. Runs from before the stream seed was recorded drew from cfg.seed."""
    stream_seed = (_stream_seed(cfg) if state is None
                   else int(state.get("stream_seed", cfg.seed)))
    keras.utils.set_random_seed(stream_seed)
    keras.config.set_dtype_policy(cfg.precision)
    return stream_seed


def _datasets(cfg: TrainConfig, train_set: faceset.FaceSet, targets: np.ndarray,
              val_set: faceset.FaceSet | None, batch: int, stream_seed: int,
              initial_epoch: int) -> tuple[Any, Any]:
    """The training batches (from ``initial_epoch``'s shuffle on) and the held-out ones."""
    train_ds = make_dataset(train_set.images, train_set.labels, batch, training=True,
                            seed=stream_seed, augment=cfg.augment,
                            label_smoothing=cfg.label_smoothing, start_epoch=initial_epoch,
                            targets=targets)
    val_ds = (make_dataset(val_set.images, val_set.labels, 256, training=False, seed=cfg.seed,
                           label_smoothing=cfg.label_smoothing, targets=val_set.targets)
              if val_set is not None else None)
    return train_ds, val_ds


def _describe(model: keras.Model, arch: str) -> tuple[int, int]:
    """Log the model's size; returns its parameters and multiply-accumulates per face."""
    model.summary(print_fn=lambda line, **_: log.debug(line))
    params, macs = model.count_params(), presets.count_macs(model)
    log.info("%s: %s parameters, %.1f M MACs", arch, f"{params:,}", macs / 1e6)
    return params, macs


def _sitting_ended(cfg: TrainConfig, epoch: int) -> dict:
    log.info("stopped after epoch %d of %d as asked; continue with the same command "
             "and --resume (python -m train.carry pack %s DIR takes it to another "
             "machine)", epoch, cfg.epochs, cfg.out)
    return {"stopped_after": epoch}


def _recalibrate(cfg: TrainConfig, train_all: faceset.FaceSet) -> list[keras.callbacks.Callback]:
    """For quantization-aware fine-tuning: ranges refreshed on the faces convert.quantize
    calibrates on, so training sees the ranges the file gets."""
    if not cfg.quantize_aware:
        return []
    return [quant_aware.Recalibrate(train_all.images[datasets.stratified_sample(
        train_all.labels, datasets.CALIBRATION_FACES, cfg.seed)])]


def _faces(cfg: TrainConfig) -> tuple[dict[str, faceset.FaceSet], faceset.FaceSet]:
    """The splits the run reads, and its Training faces with their targets."""
    splits = datasets.load(cfg.data, ("Training", cfg.test_usage) if cfg.test_usage
                           else ("Training",))
    train_all = splits["Training"]
    if cfg.labels != "fer2013":
        votes = ferplus.load_votes(cfg.ferplus, train_all, "Training")
        train_all = ferplus.relabel(train_all, votes, cfg.labels, cfg.ferplus_weight,
                                    cfg.label_smoothing)
    return splits, train_all


def _final_model(cfg: TrainConfig, out: Path, selected: bool) -> keras.Model:
    """The run's model, saved as ``best.keras``: the selected epoch's, or the last one's
    (without a held-out split nothing selects), as a plain float model."""
    best = keras.models.load_model(out / ("best.keras" if selected else "last.keras"))
    # Folded and without the simulation: a plain model that converts like any other.
    best = quant_aware.strip(best) if cfg.quantize_aware else _as_float32(best, cfg.arch)
    best.save(out / "best.keras")
    return best


def _new_model(cfg: TrainConfig, total_steps: int, peak_lr: float) -> keras.Model:
    """The preset, from ``init_from``'s weights when given, compiled with its schedule."""
    model = presets.build(cfg.arch)
    if cfg.init_from:
        model = warm_start.with_parent_weights(model, warm_start.init_source(cfg.init_from))
    if cfg.freeze:
        warm_start.freeze(model, cfg.freeze)
    if cfg.quantize_aware:
        model = quant_aware.prepare(model)
    lr: float | keras.optimizers.schedules.LearningRateSchedule = peak_lr
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps, warmup_target=peak_lr,
            warmup_steps=min(total_steps // 20, 2000), alpha=0.01)
    model.compile(optimizer=make_optimizer(cfg.optimizer, lr, cfg.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    return model


def _split(train_all: faceset.FaceSet,
           cfg: TrainConfig) -> tuple[faceset.FaceSet, faceset.FaceSet | None]:
    """The faces trained on and the held-out ones (``None`` when ``val_fraction`` is 0).

    With no held-out split nothing can pick an epoch or stop early, so the run trains for
    exactly ``epochs`` under a schedule fixed in advance (cosine) and keeps its last epoch:
    the way to train a final model on every face once a held-out run has chosen the recipe.
    """
    if cfg.val_fraction == 0:
        return train_all, None
    train_set, val_set = faceset.held_out_split(train_all, cfg.val_fraction, cfg.seed)
    if len(val_set) == 0:
        raise ValueError("val_fraction leaves no validation faces; raise it")
    return train_set, val_set


def _stream_seed(cfg: TrainConfig) -> int:
    """Seed of the shuffles, augmentations and dropout masks of a new run.

    ``cfg.stream_seed`` when given. Otherwise ``cfg.seed`` itself, except for a warm
    restart: with the parent's seed it would replay the parent's stream, the same augmented
    faces under the same dropout masks in the same order, which a net that has seen them
    memorises instead of learning anew. Mixing in the parent's sha256 gives it fresh draws
    and keeps it reproducible. (The held-out split always follows ``cfg.seed``, so a chain
    of runs selects on the same faces.)
    """
    if cfg.stream_seed is not None:
        return cfg.stream_seed
    if not cfg.init_from:
        return cfg.seed
    parent_sha256 = sha256_of(str(warm_start.init_source(cfg.init_from)))
    return (cfg.seed * 1_000_003 + int(parent_sha256[:12], 16)) % 2**31


def _teacher_targets(cfg: TrainConfig, faces: faceset.FaceSet) -> tuple[dict, np.ndarray]:
    """The blended training targets, and the teacher's record for ``metrics.json``."""
    sources = [Path(t) for t in cfg.teachers]
    started = time.monotonic()
    probs = distill.teacher_probabilities(sources, faces.images, cfg.distill_temperature)
    fit = distill.agreement(faces.labels, probs)
    log.info("teacher %s: top class equals the label on %.1f %% of the training faces "
             "(%.0f s); targets are %.0f %% teacher", " + ".join(cfg.teachers), 100 * fit,
             time.monotonic() - started, 100 * cfg.distill_weight)
    teachers = {"models": [record.parent_summary(s) for s in sources],
                "weight": cfg.distill_weight, "temperature": cfg.distill_temperature,
                "train_agreement": round(fit, 4)}
    return teachers, distill.blend_targets(faces.labels, probs, cfg.distill_weight,
                                         cfg.label_smoothing, base=faces.targets)


def _as_float32(model: keras.Model, arch: str) -> keras.Model:
    """The same weights in a pure float32 model, whatever policy training used."""
    if all(getattr(layer.dtype_policy, "name", "float32") == "float32" for layer in model.layers):
        return model
    keras.config.set_dtype_policy("float32")
    clean = presets.build(arch)
    clean.set_weights(model.get_weights())
    clean.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    return clean


