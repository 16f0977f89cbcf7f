"""``python -m train.carry``: take an unfinished run to another machine through git.

A run folder resumes from ``last.keras`` (weights and optimizer), ``state.json`` (epoch,
selection and plateau counters, the random states) and ``best.keras``; ``--resume`` then
continues exactly as if the run had not stopped. ``pack`` writes those files, with
``history.csv``, as one archive cut into parts small enough to commit (at most
``--part-mb`` each) plus ``carry.json``: each part's sha256, the run's command and the one
that continues it. ``unpack`` checks every part and puts the run folder back.

    python -m train.carry pack runs/ferplus-v3 models/unfinished/ferplus-v3
    python -m train.carry unpack models/unfinished/ferplus-v3 runs/ferplus-v3
    # then the run's own command with --resume (carry.json's "continue")

Exit codes: 0 done, 1 a file could not be read or written, 2 bad input (a folder that is
not a run, parts that are missing or altered).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import shlex
import sys
import tarfile
from pathlib import Path

log = logging.getLogger("train.carry")

#: What a run needs to resume; ``history.csv`` keeps its curves whole.
RUN_FILES = ("state.json", "last.keras", "best.keras", "history.csv")
MANIFEST = "carry.json"
_PART = "part-{:03d}.bin"


class CarryError(ValueError):
    """A folder that is not a run, or parts that do not make one."""


def pack(run: Path, dest: Path, part_bytes: int) -> dict:
    """Write ``run``'s resumable files to ``dest`` as parts of at most ``part_bytes``.

    ``best.keras`` is stored without optimizer state (only its weights are ever read).

    Returns:
        The manifest written to ``dest / carry.json``.

    Raises:
        CarryError: ``run`` has no ``state.json`` or ``last.keras``.
    """
    if not (run / "state.json").is_file() or not (run / "last.keras").is_file():
        raise CarryError(f"{run}: not a run folder (no state.json and last.keras); pass the "
                         "--out of a python -m train run")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in RUN_FILES:
            path = run / name
            if not path.is_file():
                continue
            data = _without_optimizer(path) if name == "best.keras" else path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("part-*.bin"):
        old.unlink()
    parts = []
    for i, start in enumerate(range(0, len(blob), part_bytes)):
        chunk = blob[start:start + part_bytes]
        (dest / _PART.format(i)).write_bytes(chunk)
        parts.append({"file": _PART.format(i), "bytes": len(chunk),
                      "sha256": hashlib.sha256(chunk).hexdigest()})
    state = json.loads((run / "state.json").read_text())
    command = _run_command(run)
    manifest = {"epoch": state.get("epoch"), "parts": parts,
                "sha256": hashlib.sha256(blob).hexdigest(), "command": command,
                "continue": _with_resume(command)}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def unpack(src: Path, run: Path) -> dict:
    """Check ``src``'s parts against its manifest and restore the run folder ``run``.

    Raises:
        CarryError: no manifest, a part missing or altered.
    """
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise CarryError(f"{src}: no {MANIFEST}; pass a folder written by "
                         "python -m train.carry pack") from None
    except json.JSONDecodeError as exc:
        raise CarryError(f"{src / MANIFEST}: not JSON ({exc.msg})") from None
    chunks = []
    for part in manifest["parts"]:
        path = src / part["file"]
        if not path.is_file():
            raise CarryError(f"{path}: missing; copy every part of {src}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise CarryError(f"{path}: sha256 differs from {MANIFEST}'s; copy it again")
        chunks.append(data)
    blob = b"".join(chunks)
    if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise CarryError(f"{src}: the parts do not make the packed run; pack it again")
    run.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name not in RUN_FILES or not member.isfile():
                raise CarryError(f"{src}: unexpected member {member.name!r}")
            (run / member.name).write_bytes(tar.extractfile(member).read())
    return manifest


def _without_optimizer(path: Path) -> bytes:
    import tempfile

    import keras

    model = keras.models.load_model(path, compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "best.keras"
        model.save(out)
        return out.read_bytes()


def _run_command(run: Path) -> str:
    """The command that started the run, as the run recorded it (``state.json``)."""
    state = json.loads((run / "state.json").read_text())
    return str(state.get("command", ""))


def _with_resume(command: str) -> str:
    """``command`` without the sitting's own ``--stop-after N`` and with ``--resume``."""
    if not command:
        return ""
    words = shlex.split(command)
    if "--stop-after" in words:
        at = words.index("--stop-after")
        del words[at:at + 2]
    return shlex.join(words if "--resume" in words else [*words, "--resume"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.carry",
                                description="Pack an unfinished training run into parts "
                                            "small enough to commit, or unpack it to resume.")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("pack", help="run folder -> parts")
    a.add_argument("run")
    a.add_argument("dest")
    a.add_argument("--part-mb", type=float, default=3.9,
                   help="largest part in MB (default 3.9: the repository's 4 MB a file)")
    b = sub.add_parser("unpack", help="parts -> run folder")
    b.add_argument("src")
    b.add_argument("run")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "pack" and not 0.1 <= args.part_mb <= 1024:
        p.error("--part-mb: must be within 0.1..1024")
    try:
        if args.action == "pack":
            m = pack(Path(args.run), Path(args.dest), int(args.part_mb * 1e6))
            log.info("packed epoch %s of %s into %d part(s) in %s", m["epoch"], args.run,
                     len(m["parts"]), args.dest)
        else:
            m = unpack(Path(args.src), Path(args.run))
            log.info("restored %s at epoch %s; continue with: %s", args.run, m["epoch"],
                     m["continue"] or "the run's command with --resume")
    except CarryError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("%s: %s", exc.filename or args.action, exc.strerror or exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
