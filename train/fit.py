"""One training run: data -> model -> checkpoints, logs, plots and ``metrics.json``.

The run folder holds everything needed to resume (``last.keras`` + ``state.json``, written
every epoch) and everything worth keeping (``best.keras``, ``history.csv``, ``curves.png``,
``confusion_matrix.png``, ``metrics.json``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from edge import sysinfo
from edge.preprocessing import EMOTIONS
from train import data as fer
from train import distill, ferplus, presets, quant_aware
from train.inputs import Augment, make_dataset, steps_per_epoch
from train.metrics import classification_metrics, format_table, plot_confusion, plot_curves

log = logging.getLogger(__name__)


class InitFromError(ValueError):
    """The model named by ``init_from`` is missing or does not fit the preset."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved into ``metrics.json``)."""

    data: str
    out: str
    arch: str = "edge-plus"
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "plateau"  # plateau | cosine
    optimizer: str = "adam"  # adam | sgd (Nesterov momentum 0.9)
    weight_decay: float = 0.0  # decoupled: AdamW for adam, SGD's own for sgd
    label_smoothing: float = 0.1
    class_weight: str = "none"  # none | balanced | sqrt
    val_fraction: float = 0.1  # 0: train on all of Training for `epochs`, keep the last epoch
    test_usage: str = "PublicTest"
    patience: int = 12
    monitor: str = "val_loss"  # val_loss | val_accuracy: picks best.keras and stops early
    plateau_patience: int = 4
    seed: int = 1337
    stream_seed: int | None = None  # shuffles/augmentation/dropout; None: see _stream_seed
    precision: str = "float32"  # float32 | mixed_bfloat16
    augment: Augment = field(default_factory=Augment)
    resume: bool = False
    init_from: str = ""  # a .keras model of the same preset whose weights start this run
    teachers: tuple[str, ...] = ()  # .keras models (any preset) whose soft labels are blended in
    distill_weight: float = 0.5  # share of each target taken from the teacher
    distill_temperature: float = 1.0
    quantize_aware: bool = False  # fine-tune init_from through simulated int8 rounding
    labels: str = "fer2013"  # fer2013 | ferplus | mixed (see train.ferplus)
    ferplus: str = ""  # FER+ votes file: needed by ferplus/mixed, scores the test split too
    ferplus_weight: float = 0.5  # mixed: the votes' share of each target
    command: str = ""


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


class ResumeError(ValueError):
    """``--resume`` asked for something other than the run in the folder."""


class _Resumable:
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


class _ResumableEarlyStopping(_Resumable, keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters survive a resume."""


class _ResumablePlateau(_Resumable, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a resume."""


class _RunState(keras.callbacks.Callback):
    """Writes ``last.keras`` and ``state.json`` after every epoch so a run can resume."""

    def __init__(self, out: Path, early: _ResumableEarlyStopping | None,
                 plateau: _ResumablePlateau | None, elapsed: float, since: int,
                 teacher_sha256: list[str], stream_seed: int, labels: str) -> None:
        super().__init__()
        self.labels = labels
        self.out, self.early, self.plateau, self.since = out, early, plateau, since
        self.teacher_sha256, self.stream_seed = teacher_sha256, stream_seed
        self.elapsed_before = elapsed
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.model.save(self.out / "last.keras")
        state = {
            "epoch": epoch + 1,
            "elapsed_s": round(self.elapsed(), 1),
            "early": ({"monitor": self.early.monitor, "best": float(self.early.best),
                       "wait": int(self.early.wait), "since": self.since}
                      if self.early is not None else None),
            "teacher_sha256": self.teacher_sha256,
            "stream_seed": self.stream_seed,
            "labels": self.labels,
        }
        if self.plateau is not None:
            state["plateau"] = {"best": float(self.plateau.best), "wait": int(self.plateau.wait),
                                "cooldown": int(self.plateau.cooldown_counter)}
        tmp = self.out / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.out / "state.json")


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


def run(cfg: TrainConfig) -> dict:
    """Train per ``cfg`` and write all artefacts to ``cfg.out``; returns the metrics dict."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "state.json"
    state = json.loads(state_file.read_text()) if cfg.resume and state_file.exists() else None
    if cfg.resume and state is None:
        log.warning("--resume: no state.json in %s, starting from scratch", out)

    # Runs from before the stream seed was recorded drew from cfg.seed.
    stream_seed = (_stream_seed(cfg) if state is None
                   else int(state.get("stream_seed", cfg.seed)))
    keras.utils.set_random_seed(stream_seed)
    keras.config.set_dtype_policy(cfg.precision)
    if state is not None and (state.get("early") is None) != (cfg.val_fraction == 0):
        # Half the run on other faces than the rest would be neither recipe.
        raise ResumeError(f"resume: {out} was trained "
                          + ("on every Training face; pass --val-fraction 0"
                             if state.get("early") is None else
                             "with a held-out split; drop --val-fraction 0"))
    # Loaded (and its preset checked) before the data and teachers, to fail fast.
    resumed = (_resumed_model(out / "last.keras", cfg.arch, cfg.quantize_aware)
               if state is not None else None)
    if cfg.quantize_aware and not (cfg.init_from or resumed):
        raise InitFromError("quantize_aware fine-tunes a trained model: pass init_from")

    if state is not None and state.get("labels", "fer2013") != cfg.labels:
        raise ResumeError(f"resume: {out} was trained with --labels "
                          f"{state.get('labels', 'fer2013')}; pass the same --labels")
    if cfg.labels != "fer2013" and not cfg.ferplus:
        raise fer.DataError(f"labels {cfg.labels}: needs the FER+ votes file (--ferplus)")
    usages = ("Training", cfg.test_usage) if cfg.test_usage else ("Training",)
    splits = fer.load(cfg.data, usages)
    train_all = splits["Training"]
    if cfg.labels != "fer2013":
        train_all = ferplus.relabel(train_all, ferplus.load_votes(cfg.ferplus, train_all,
                                                                  "Training"),
                                    cfg.labels, cfg.ferplus_weight, cfg.label_smoothing)
    train_set, val_set = _split(train_all, cfg)
    selects = val_set is not None  # else the run keeps its last epoch
    log.info("train %d faces, validation %d faces", len(train_set),
             len(val_set) if selects else 0)

    initial_epoch = int(state["epoch"]) if state is not None else 0
    steps = steps_per_epoch(len(train_set), cfg.batch_size)
    if state is not None:
        _refuse_other_teachers(state, cfg.teachers, out)
    teacher_record, targets = (_teacher_targets(cfg, train_set)
                               if cfg.teachers else (None, train_set.targets))
    teacher_sha256 = [t["sha256"] for t in teacher_record["models"]] if teacher_record else []
    train_ds = make_dataset(train_set.images, train_set.labels, cfg.batch_size, training=True,
                            seed=stream_seed, augment=cfg.augment,
                            label_smoothing=cfg.label_smoothing, start_epoch=initial_epoch,
                            targets=targets)
    val_ds = (make_dataset(val_set.images, val_set.labels, 256, training=False, seed=cfg.seed,
                           label_smoothing=cfg.label_smoothing, targets=val_set.targets)
              if selects else None)

    if resumed is not None:
        model = resumed
        log.info("resuming %s at epoch %d", out / "last.keras", initial_epoch)
    else:
        model = presets.build(cfg.arch)
        if cfg.init_from:
            _load_weights(model, _init_source(cfg.init_from))
        if cfg.quantize_aware:
            model = quant_aware.prepare(model)
        total = cfg.epochs * steps
        lr: float | keras.optimizers.schedules.LearningRateSchedule = cfg.learning_rate
        if cfg.lr_schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(
                0.0, total, warmup_target=cfg.learning_rate,
                warmup_steps=min(total // 20, 2000), alpha=0.01)
        elif cfg.lr_schedule != "plateau":
            raise ValueError(f"lr_schedule: unknown '{cfg.lr_schedule}'; use plateau or cosine")
        model.compile(optimizer=make_optimizer(cfg.optimizer, lr, cfg.weight_decay),
                      loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    model.summary(print_fn=lambda line, **_: log.debug(line))
    params, macs = model.count_params(), presets.count_macs(model)
    log.info("%s: %s parameters, %.1f M MACs", cfg.arch, f"{params:,}", macs / 1e6)

    if cfg.monitor not in ("val_loss", "val_accuracy"):
        raise ValueError(f"monitor: unknown '{cfg.monitor}'; use val_loss or val_accuracy")
    restored_early = state and state.get("early")
    # Runs from before the monitor was recorded selected on validation loss.
    saved_monitor = restored_early.get("monitor", "val_loss") if restored_early else cfg.monitor
    if saved_monitor != cfg.monitor:
        log.warning("monitor changed from %s to %s: best.keras and early stopping start over "
                    "from this epoch", saved_monitor, cfg.monitor)
        restored_early = None
    # First epoch (0-based) that competes for best.keras.
    since = restored_early.get("since", 0) if restored_early else initial_epoch
    selecting: list[keras.callbacks.Callback] = []  # best.keras and early stopping
    early = None
    if selects:
        early = _ResumableEarlyStopping(restored_early, monitor=cfg.monitor,
                                        patience=cfg.patience, restore_best_weights=False,
                                        verbose=1)
        checkpoint = keras.callbacks.ModelCheckpoint(out / "best.keras", monitor=cfg.monitor,
                                                     save_best_only=True)
        if restored_early:
            # ModelCheckpoint must not overwrite a better best.keras from before the resume.
            checkpoint.best = restored_early["best"]
        selecting = [checkpoint, early]
    plateau = (_ResumablePlateau(state and state.get("plateau"), monitor="val_loss", factor=0.5,
                                 patience=cfg.plateau_patience, min_lr=1e-5, verbose=1)
               if cfg.lr_schedule == "plateau" else None)
    run_state = _RunState(out, early, plateau, state["elapsed_s"] if state else 0.0, since,
                          teacher_sha256, stream_seed, cfg.labels)
    # The faces convert.quantize calibrates on, so training sees the ranges the file gets.
    recalibrate = ([quant_aware.Recalibrate(train_all.images[fer.stratified_sample(
        train_all.labels, fer.CALIBRATION_FACES, cfg.seed)])] if cfg.quantize_aware else [])
    callbacks: list[keras.callbacks.Callback] = [
        *recalibrate,
        *selecting,
        keras.callbacks.CSVLogger(out / "history.csv", append=state is not None),
        *([plateau] if plateau else []),
        run_state,  # last, so the counters it saves are this epoch's
    ]

    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
              steps_per_epoch=steps,
              class_weight=class_weights(train_set.labels, cfg.class_weight), callbacks=callbacks,
              shuffle=False,  # the dataset shuffles itself, reproducibly
              verbose=1 if os.isatty(1) else 2)
    wall = run_state.elapsed()
    epochs_done = _epochs_in(out / "history.csv")
    # Without a held-out split nothing selects: the run's model is its last epoch.
    best = keras.models.load_model(out / ("best.keras" if selects else "last.keras"))
    # Folded and without the simulation: a plain model that converts like any other.
    best = quant_aware.strip(best) if cfg.quantize_aware else _as_float32(best, cfg.arch)
    best.save(out / "best.keras")
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
        "data_sha256": fer.sha256_of(cfg.data),
        "labels": cfg.labels,
        **({"ferplus": {"votes": cfg.ferplus, "sha256": fer.sha256_of(cfg.ferplus),
                        **({"weight": cfg.ferplus_weight} if cfg.labels == "mixed" else {})}}
           if cfg.ferplus else {}),
        "command": cfg.command,
        "config": _jsonable(asdict(cfg)),
        "machine": sysinfo.machine(("tensorflow", "tensorflow-cpu", "keras", "numpy")),
        **({"init_from": _parent_summary(Path(cfg.init_from))} if cfg.init_from else {}),
        **({"teachers": teacher_record} if teacher_record else {}),
        "validation": (classification_metrics(val_set.labels, _predict(best, val_set.images))
                       if selects else None),
    }
    if cfg.test_usage:
        test = splits[cfg.test_usage]
        result["test_usage"] = cfg.test_usage
        predicted = _predict(best, test.images)
        result["test"] = classification_metrics(test.labels, predicted)
        log.info("%s:\n%s", cfg.test_usage, format_table(result["test"]))
        if cfg.ferplus:
            result["test_ferplus"] = ferplus.majority_metrics(
                ferplus.load_votes(cfg.ferplus, test, cfg.test_usage), predicted)
            log.info("%s, FER+ majority (%d faces): accuracy %.4f", cfg.test_usage,
                     result["test_ferplus"]["count"], result["test_ferplus"]["accuracy"])
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


def _split(train_all: fer.FaceSet, cfg: TrainConfig) -> tuple[fer.FaceSet, fer.FaceSet | None]:
    """The faces trained on and the held-out ones (``None`` when ``val_fraction`` is 0).

    With no held-out split nothing can pick an epoch or stop early, so the run trains for
    exactly ``epochs`` under a schedule fixed in advance (cosine) and keeps its last epoch:
    the way to train a final model on every face once a held-out run has chosen the recipe.
    """
    if cfg.val_fraction == 0:
        if cfg.lr_schedule != "cosine":
            raise ValueError("val_fraction 0 leaves no validation loss for the plateau "
                             "schedule; use lr_schedule cosine")
        return train_all, None
    keep, held = fer.stratified_split(train_all.labels, cfg.val_fraction, cfg.seed)
    val_set = fer.subset(train_all, held, f"(held-out {cfg.val_fraction:.0%})")
    if len(val_set) == 0:
        raise ValueError("val_fraction leaves no validation faces; raise it")
    return fer.subset(train_all, keep, "(train part)"), val_set


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
    parent_sha256 = fer.sha256_of(str(_init_source(cfg.init_from)))
    return (cfg.seed * 1_000_003 + int(parent_sha256[:12], 16)) % 2**31


def _init_source(path: str | Path) -> Path:
    """The ``init_from`` model file, which must exist."""
    source = Path(path)
    if not source.is_file():
        raise InitFromError(f"init_from: no model file at {source}")
    return source


def _load_weights(model: keras.Model, source: Path) -> None:
    """Copy the weights of the model saved at ``source`` into ``model`` (same preset)."""
    parent = keras.models.load_model(source, compile=False)
    shapes = [w.shape for w in model.get_weights()]
    if [w.shape for w in parent.get_weights()] != shapes:
        raise InitFromError(f"init_from: {source} is a '{parent.name}' model whose weights "
                            f"do not fit the '{model.name}' preset; pass --arch {parent.name}")
    model.set_weights(parent.get_weights())
    log.info("starting from the weights of %s", source)


def _resumed_model(checkpoint: Path, arch: str, quantize_aware: bool) -> keras.Model:
    """The run's last checkpoint, with its optimizer, refused if it is not of ``arch``.

    A resume under another preset than the run's, or with quantization-aware training
    switched on or off, would mislabel the run's record.
    """
    model = keras.models.load_model(checkpoint)
    if model.name != arch:
        raise ResumeError(f"resume: {checkpoint.parent} is an '{model.name}' run, not "
                          f"'{arch}'; pass --arch {model.name}")
    if quant_aware.is_quantization_aware(model) != quantize_aware:
        raise ResumeError(f"resume: {checkpoint.parent} was trained "
                          + ("quantization-aware; pass --quantize-aware" if not quantize_aware
                             else "without --quantize-aware; drop it"))
    return model


def _refuse_other_teachers(state: dict, teachers: tuple[str, ...], out: Path) -> None:
    """Stop a resume whose teacher files differ from the run's, before the teachers run."""
    if not all(Path(t).is_file() for t in teachers):
        return  # the teachers' own loading names the missing file
    now = [fer.sha256_of(t) for t in teachers]
    if state.get("teacher_sha256", []) != now:
        # Other soft labels would silently make the second half a different run.
        raise distill.TeacherError(
            f"teacher: {out} was trained with teachers of sha256 "
            f"{state.get('teacher_sha256', []) or 'none'}, now {now or 'none'}; "
            "resume with the same --teacher files, or start a new --out")


def _teacher_targets(cfg: TrainConfig, faces: fer.FaceSet) -> tuple[dict, np.ndarray]:
    """The blended training targets, and the teacher's record for ``metrics.json``."""
    sources = [Path(t) for t in cfg.teachers]
    started = time.monotonic()
    probs = distill.teacher_probabilities(sources, faces.images, cfg.distill_temperature)
    fit = distill.agreement(faces.labels, probs)
    log.info("teacher %s: top class equals the label on %.1f %% of the training faces "
             "(%.0f s); targets are %.0f %% teacher", " + ".join(cfg.teachers), 100 * fit,
             time.monotonic() - started, 100 * cfg.distill_weight)
    record = {"models": [_parent_summary(s) for s in sources], "weight": cfg.distill_weight,
              "temperature": cfg.distill_temperature, "train_agreement": round(fit, 4)}
    return record, distill.blend_targets(faces.labels, probs, cfg.distill_weight,
                                         cfg.label_smoothing, base=faces.targets)


def _parent_summary(source: Path) -> dict:
    """A model this run started from or learnt from, with its run's own record if present."""
    summary: dict = {"model": str(source), "sha256": fer.sha256_of(str(source))}
    metrics = source.parent / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        summary.update({k: m[k] for k in ("command", "epochs", "best_epoch", "wall_time_s")
                        if k in m})
        if "test" in m:
            summary["test_accuracy"] = m["test"]["accuracy"]
    return summary


def _predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    probs = model.predict(images[..., None].astype(np.float32), batch_size=256, verbose=0)
    return np.argmax(probs, axis=1)


def _as_float32(model: keras.Model, arch: str) -> keras.Model:
    """The same weights in a pure float32 model, whatever policy training used."""
    if all(getattr(layer.dtype_policy, "name", "float32") == "float32" for layer in model.layers):
        return model
    keras.config.set_dtype_policy("float32")
    clean = presets.build(arch)
    clean.set_weights(model.get_weights())
    clean.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    return clean


def _epochs_in(history_csv: Path) -> int:
    with history_csv.open() as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def _best_epoch(history_csv: Path, monitor: str, since: int) -> int:
    import csv

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
