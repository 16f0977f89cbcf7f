"""``python -m train``: train an emotion model on FER-2013 (CSV or image folders)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import signal
import sys
import threading

from train.config import (
    Arch,
    Augment,
    AugmentRecipe,
    ClassWeight,
    Distribute,
    Labels,
    Monitor,
    OneLineParser,
    Optimizer,
    Precision,
    Schedule,
    TrainConfig,
    choices,
    tensorflow_missing,
)
from train.data import add_data_options, check_data_options
from train.strategy import check_hosts_resolve, task_from_env

#: TrainConfig's own defaults: the flags show and use the same ones.
_DEFAULT = {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING}


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """The run's settings from the command line, and whether to log verbosely.

    Exits 2 (argparse's usage error) on a bad flag or value, without importing TensorFlow.
    """
    p = OneLineParser(
        prog="python -m train",
        description="Train a facial-emotion CNN on FER-2013 and write a run folder "
                    "(best.keras, history.csv, curves.png, confusion_matrix.png, metrics.json).")
    add_data_options(p, "needed by --labels ferplus|mixed; also scores the test split "
                        "against the FER+ majority")
    _run_options(p)
    _optimiser_options(p)
    _augment_options(p)
    _resume_options(p)
    _target_options(p)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.no_augment and (args.erase or args.augment != "standard"):
        p.error("--erase and --augment are augmentation; drop them or --no-augment")
    try:
        cfg = _config(args, shlex.join(["python", "-m", "train",
                                        *(sys.argv[1:] if argv is None else argv)]))
    except ValueError as exc:  # Augment names its field; TrainConfigError names the flag
        message = str(exc)
        p.error(message if message.startswith("--") else f"--{message}")
    check_data_options(p, args)
    if args.distribute == "multi-worker":
        try:
            task_from_env(os.environ)
            check_hosts_resolve(os.environ)
        except ValueError as exc:
            p.error(str(exc))
    return cfg, args.verbose


def _config(args: argparse.Namespace, command: str) -> TrainConfig:
    """The flags as a :class:`TrainConfig` (raises ValueError naming a bad one)."""
    augment = (Augment.none() if args.no_augment
               else Augment.named(args.augment, erase=args.erase))
    same = {name: getattr(args, name) for name in _DEFAULT if hasattr(args, name)}
    return TrainConfig(**same, data=args.data or "", out=args.out, learning_rate=args.lr,
                       augment=augment, teachers=tuple(args.teacher), command=command)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=_DEFAULT["arch"], choices=choices(Arch),
                   help="model preset (default %(default)s, the shipped one)")
    p.add_argument("--epochs", type=int, default=_DEFAULT["epochs"],
                   help="maximum epochs (default %(default)s)")
    p.add_argument("--out", default="runs/edge-plus",
                   help="run folder (default runs/edge-plus)")
    p.add_argument("--batch-size", type=int, default=_DEFAULT["batch_size"])


def _optimiser_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr", type=float, default=_DEFAULT["learning_rate"],
                   help="peak learning rate (default %(default)s)")
    p.add_argument("--lr-schedule", choices=choices(Schedule), default=_DEFAULT["lr_schedule"],
                   help="halve on a validation-loss plateau, or cosine decay with warm-up")
    p.add_argument("--optimizer", choices=choices(Optimizer), default=_DEFAULT["optimizer"],
                   help="Adam, or SGD with Nesterov momentum 0.9 (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=_DEFAULT["weight_decay"],
                   help="decoupled weight decay (AdamW for adam; default 0: none)")
    p.add_argument("--label-smoothing", type=float, default=_DEFAULT["label_smoothing"])
    p.add_argument("--class-weight", choices=choices(ClassWeight), default=_DEFAULT["class_weight"])
    p.add_argument("--val-fraction", type=float, default=_DEFAULT["val_fraction"],
                   help="share of Training held out (stratified) to pick best.keras and stop "
                        "early (default %(default)s); 0 trains on every Training face for exactly "
                        "--epochs and keeps the last epoch (needs --lr-schedule cosine)")
    p.add_argument("--test-usage", default=_DEFAULT["test_usage"],
                   help="split evaluated once at the end ('' for none)")
    p.add_argument("--patience", type=int, default=_DEFAULT["patience"],
                   help="early-stopping patience (epochs, default %(default)s)")
    p.add_argument("--monitor", choices=choices(Monitor), default=_DEFAULT["monitor"],
                   help="validation figure that picks best.keras and drives early stopping")
    p.add_argument("--seed", type=int, default=_DEFAULT["seed"])
    p.add_argument("--stream-seed", type=int, default=_DEFAULT["stream_seed"], metavar="N",
                   help="seed of the shuffles, augmentations and dropout (default: --seed, or "
                        "for --init-from one mixed with the parent's sha256, so a warm restart "
                        "does not replay its parent's stream)")
    p.add_argument("--precision", choices=choices(Precision), default=_DEFAULT["precision"],
                   help="mixed_bfloat16 trains faster on CPUs with AMX/AVX512-BF16")


def _augment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--augment", choices=choices(AugmentRecipe), default="standard",
                   help="augmentation recipe: standard (flip, rotation 10, shift/zoom 10 %%, "
                        "brightness and contrast jitter) or strong (flip, rotation 30, "
                        "shift/zoom 20 %%, gain 0.2-1.2)")
    p.add_argument("--erase", type=float, default=0.0, metavar="P",
                   help="random erasing: chance per face that a rectangle (2-20 %% of it) is "
                        "replaced by noise (default 0: off)")


def _resume_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished epoch")
    p.add_argument("--stop-after", type=int, default=_DEFAULT["stop_after"], metavar="N",
                   help="end this sitting after epoch N of --epochs, the run resumable with "
                        "--resume (on this or another machine) exactly as if it had not "
                        "stopped; see train.carry to take it along (default %(default)s: run on)")
    p.add_argument("--init-from", default=_DEFAULT["init_from"], metavar="MODEL",
                   help="start from the weights of this .keras model (same --arch), with a "
                        "fresh optimizer and schedule: a warm restart of a finished run (with "
                        "--resume, the run continues from its own checkpoint and only "
                        "records this)")
    p.add_argument("--freeze", type=int, default=_DEFAULT["freeze"], metavar="N",
                   help="with --init-from: keep its first N convolutions as they are "
                        "(fine-tuning on a few hundred of your own photos; default 0)")
    p.add_argument("--distribute", choices=choices(Distribute), default=_DEFAULT["distribute"],
                   help="mirrored: train on every GPU of this machine (tf.distribute."
                        "MirroredStrategy); multi-worker: on several machines, each running "
                        "this command with its own TF_CONFIG (MultiWorkerMirroredStrategy); "
                        "--batch-size is per replica and the learning rate scales with the "
                        "replicas")


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", action="append", default=[], metavar="MODEL",
                   help="distil: blend this .keras model's probabilities (any preset, averaged "
                        "over each face and its mirror) into the training targets; repeat "
                        "for an ensemble teacher")
    p.add_argument("--distill-weight", type=float, default=_DEFAULT["distill_weight"],
                   help="share of each training target taken from --teacher (default %(default)s)")
    p.add_argument("--distill-temperature", type=float,
                   default=_DEFAULT["distill_temperature"],
                   help="soften the teacher's probabilities (p ** 1/T, default 1)")
    p.add_argument("--labels", choices=choices(Labels), default=_DEFAULT["labels"],
                   help="training targets: FER-2013's own labels (default), the FER+ vote "
                        "distributions (faces whose majority is not one of the seven emotions "
                        "left out), or the label blended with the votes (--ferplus-weight)")
    p.add_argument("--ferplus-weight", type=float, default=_DEFAULT["ferplus_weight"],
                   help="--labels mixed: the votes' share of each target (default %(default)s)")
    p.add_argument("--quantize-aware", action="store_true",
                   help="fine-tune the --init-from model through the int8 rounding its "
                        "converted file will do (BatchNormalization folded in); best.keras is "
                        "saved folded, as a plain float model for convert.quantize")


def main(argv: list[str] | None = None) -> int:
    cfg, verbose = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if tensorflow_missing("python -m train"):
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices
    # ... and its Python-side INFO lines (a distribution strategy's per-trace chatter).
    logging.getLogger("tensorflow").setLevel(logging.DEBUG if verbose else logging.WARNING)
    from train.distill import TeacherError
    from train.faceset import DataError
    from train.fit import run
    from train.resume import ResumeError
    from train.warm_start import InitFromError

    try:
        run(cfg, stop_on_signal())
    except (DataError, InitFromError, ResumeError, TeacherError) as exc:
        logging.getLogger("train").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def stop_on_signal() -> threading.Event:
    """An event SIGTERM or a first Ctrl-C sets: the run ends after the epoch in progress,
    saved and resumable (a second Ctrl-C stops at once, losing that epoch)."""
    asked = threading.Event()

    def ask(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        logging.getLogger("train").warning(
            "stopping after the epoch in progress; --resume continues from there%s",
            " (Ctrl-C again: stop now)" if signum == signal.SIGINT else "")

    signal.signal(signal.SIGTERM, ask)
    signal.signal(signal.SIGINT, ask)
    return asked


if __name__ == "__main__":
    sys.exit(main())
