"""Resuming a run: its saved state, its last checkpoint, and what must not change.

``--resume`` continues a run exactly (:mod:`train.checkpoints` writes what it needs); a
resume with another recipe (labels, split, preset, teachers) would make the second half a
different run under the first half's name, so each is refused with the flag to change.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras

from edge.model_files import sha256_of
from train import distill, quant_aware
from train.config import TrainConfig

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """``--resume`` asked for something other than the run in the folder."""


def saved_state(cfg: TrainConfig, out: Path) -> dict | None:
    """The run's ``state.json`` on ``--resume``, refused if it is another recipe."""
    state_file = out / "state.json"
    state = json.loads(state_file.read_text()) if cfg.resume and state_file.exists() else None
    if cfg.resume and state is None:
        log.warning("--resume: no state.json in %s, starting from scratch", out)
    if state is None:
        return None
    if (state.get("early") is None) != (cfg.val_fraction == 0):
        # Half the run on other faces than the rest would be neither recipe.
        raise ResumeError(f"resume: {out} was trained "
                          + ("on every Training face; pass --val-fraction 0"
                             if state.get("early") is None else
                             "with a held-out split; drop --val-fraction 0"))
    if state.get("labels", "fer2013") != cfg.labels:
        raise ResumeError(f"resume: {out} was trained with --labels "
                          f"{state.get('labels', 'fer2013')}; pass the same --labels")
    return state


def resumed_model(checkpoint: Path, arch: str, quantize_aware: bool) -> keras.Model:
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


def refuse_other_teachers(state: dict, teachers: tuple[str, ...], out: Path) -> None:
    """Stop a resume whose teacher files differ from the run's, before the teachers run."""
    if not all(Path(t).is_file() for t in teachers):
        return  # the teachers' own loading names the missing file
    now = [sha256_of(t) for t in teachers]
    if state.get("teacher_sha256", []) != now:
        # Other soft labels would silently make the second half a different run.
        raise distill.TeacherError(
            f"teacher: {out} was trained with teachers of sha256 "
            f"{state.get('teacher_sha256', []) or 'none'}, now {now or 'none'}; "
            "resume with the same --teacher files, or start a new --out")
