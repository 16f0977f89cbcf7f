"""What defines a training run: typed settings validated in one place, without TensorFlow.

``python -m train --help`` and a bad flag only import this module, so they answer at once.
:class:`TrainConfig` checks its own values and raises :class:`TrainConfigError` naming the
flag and the fix; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
from dataclasses import dataclass, field, fields
from typing import Literal, NoReturn, get_args, get_origin, get_type_hints

from edge.config.checks import ConfigError, Range

Arch = Literal["edge", "edge-plus", "edge-sep", "seed", "mlp"]  # train.presets.PRESETS, one each
Schedule = Literal["plateau", "cosine"]
Optimizer = Literal["adam", "sgd"]
ClassWeight = Literal["none", "balanced", "sqrt"]
Monitor = Literal["val_loss", "val_accuracy"]
Precision = Literal["float32", "mixed_bfloat16"]
Labels = Literal["fer2013", "ferplus", "mixed"]
Distribute = Literal["none", "mirrored", "multi-worker"]
AugmentRecipe = Literal["standard", "strong"]


def tensorflow_missing(command: str) -> bool:
    """Say in one line that ``command`` needs the train extra, when TensorFlow is absent
    (a device install); True then."""
    if importlib.util.find_spec("tensorflow") is not None:
        return False
    logging.getLogger("train").error(
        "%s needs TensorFlow, which a device install leaves out: pip install -e '.[train]' "
        "on a workstation", command)
    return True


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line (the usage is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def choices(literal: object) -> tuple[str, ...]:
    """The allowed strings of a ``Literal`` option (argparse ``choices``)."""
    return get_args(literal)


class TrainConfigError(ValueError):
    """A setting that cannot be used; the message names the flag and what is allowed."""


@dataclass(frozen=True)
class Augment:
    """Random perturbations applied per face during training.

    Geometric ones (rotation, shift, zoom) are combined into one affine warp per face, so
    each face is resampled once. ``erase`` is the chance that a face then gets one random
    rectangle (2-20 % of its area) replaced by noise, so the net cannot lean on a single
    region (a hand over the mouth, a shadow over the eyes happen in the room too).
    """

    flip: bool = True
    rotate_deg: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    brightness: float = 0.15
    contrast: float = 0.2
    erase: float = 0.0
    # Multiply each face by a gain drawn from this range (Keras's ``brightness_range``);
    # (1, 1): off, and nothing drawn, so runs without it keep their random stream.
    gain: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        Range(0.0, 1.0, note="a probability").check(self.erase, "erase")
        if not 0.0 < self.gain[0] <= self.gain[1]:
            raise ValueError(f"augment gain: needs 0 < low <= high, got {self.gain}")

    @classmethod
    def none(cls) -> Augment:
        return cls(False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def named(cls, name: str, erase: float = 0.0) -> Augment:
        """A named recipe: ``standard`` (the default above) or ``strong`` (the augmentation
        of the compact FER+ networks: rotation 30 degrees, shift and zoom 20 %, a gain of
        0.2-1.2, flips; no contrast jitter)."""
        if name == "standard":
            return cls(erase=erase)
        if name == "strong":
            return cls(True, 30.0, 0.2, 0.2, 0.0, 0.0, erase, (0.2, 1.2))
        raise ValueError(f"augment: unknown recipe '{name}'; use standard or strong")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved into ``metrics.json``)."""

    data: str
    out: str
    arch: Arch = "edge-plus"
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: Schedule = "plateau"
    optimizer: Optimizer = "adam"  # sgd: Nesterov momentum 0.9
    weight_decay: float = 0.0  # decoupled: AdamW for adam, SGD's own for sgd
    label_smoothing: float = 0.1
    class_weight: ClassWeight = "none"
    val_fraction: float = 0.1  # 0: train on all of Training for `epochs`, keep the last epoch
    test_usage: str = "PublicTest"
    patience: int = 12
    monitor: Monitor = "val_loss"  # picks best.keras and stops early
    plateau_patience: int = 4
    seed: int = 1337
    stream_seed: int | None = None  # shuffles/augmentation/dropout; None: see fit._stream_seed
    precision: Precision = "float32"
    augment: Augment = field(default_factory=Augment)
    resume: bool = False
    init_from: str = ""  # a .keras model of the same preset whose weights start this run
    teachers: tuple[str, ...] = ()  # .keras models (any preset) whose soft labels are blended in
    distill_weight: float = 0.5  # share of each target taken from the teacher
    distill_temperature: float = 1.0
    quantize_aware: bool = False  # fine-tune init_from through simulated int8 rounding
    freeze: int = 0  # convolutions at the input kept as they are (fine-tuning)
    # mirrored: every GPU (or CPU device) of this machine; multi-worker: the TF_CONFIG cluster
    distribute: Distribute = "none"
    labels: Labels = "fer2013"  # see train.ferplus
    ferplus: str = ""  # FER+ votes file: needed by ferplus/mixed, scores the test split too
    ferplus_weight: float = 0.5  # mixed: the votes' share of each target
    # End the session's part of the run after this epoch (1-based), resumable; 0: run on.
    stop_after: int = 0
    command: str = ""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            hint = hints[f.name]
            allowed = get_args(hint) if get_origin(hint) is Literal else ()
            if allowed and getattr(self, f.name) not in allowed:
                raise TrainConfigError(f"--{_flag(f.name)}: must be one of "
                                       f"{', '.join(allowed)}, got {getattr(self, f.name)!r}")
        for name in ("learning_rate", "weight_decay", "label_smoothing", "val_fraction",
                     "distill_weight", "distill_temperature", "ferplus_weight"):
            if not math.isfinite(getattr(self, name)):
                raise TrainConfigError(f"--{_flag(name)}: must be a finite number")
        self._check_ranges()
        self._check_combinations()

    def _check_ranges(self) -> None:
        for name, bound in _RANGES.items():
            try:
                bound.check(getattr(self, name), f"--{_flag(name)}")
            except ConfigError as exc:
                raise TrainConfigError(str(exc)) from None

    def _check_combinations(self) -> None:
        if self.val_fraction == 0 and self.lr_schedule != "cosine":
            raise TrainConfigError("--val-fraction 0 leaves no validation loss for the plateau "
                                   "schedule; add --lr-schedule cosine")
        if self.labels != "fer2013" and not self.ferplus:
            raise TrainConfigError(f"--labels {self.labels} trains on FER+ votes: add "
                                   "--ferplus VOTES")
        if self.quantize_aware and not (self.init_from or self.resume):
            raise TrainConfigError("--quantize-aware fine-tunes a trained model: add "
                                   "--init-from MODEL")
        if self.freeze and not self.init_from:
            raise TrainConfigError("--freeze keeps a parent's first layers: add --init-from")
        if self.quantize_aware and self.precision != "float32":
            raise TrainConfigError("--quantize-aware simulates int8 on float32; drop "
                                   "--precision")


#: Each numeric setting's allowed values, in the device config's message style
#: (``--epochs: must be > 0, got 0``).
_RANGES: dict[str, Range] = {
    "epochs": Range(0, None, lo_open=True, amount=True),
    "batch_size": Range(0, None, lo_open=True, amount=True),
    "patience": Range(0, None, lo_open=True, amount=True),
    "learning_rate": Range(0, None, lo_open=True, amount=True),
    "weight_decay": Range(0, None, amount=True),
    "val_fraction": Range(0.0, 0.5, hi_open=True),
    "label_smoothing": Range(0.0, 1.0, hi_open=True),
    "distill_weight": Range(0.0, 1.0, lo_open=True),
    "distill_temperature": Range(0, None, lo_open=True, amount=True),
    "freeze": Range(0, 20, unit="convolutions"),
    "ferplus_weight": Range(0.0, 1.0),
    "stop_after": Range(0, None, amount=True),
}


def _flag(name: str) -> str:
    return {"learning_rate": "lr"}.get(name, name.replace("_", "-"))
