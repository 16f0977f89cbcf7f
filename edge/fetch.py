"""``python -m edge.fetch yunet``: put the YuNet face detector's model where the config wants it.

The repository does not carry the file. This downloads opencv_zoo's published copy (or
copies one given with ``--from``, for a device without a network), checks it against the
pinned sha256, and writes it atomically where ``detector.model`` points (by default
``models/yunet/face_detection_yunet_2026may.onnx``, which git ignores). It never runs at
service start; ``systemd/install.sh --with-yunet`` runs it once.

Exit codes: 0 written (or already there and intact), 1 the download failed (unreachable,
cut short), 2 bad input (a wrong sha256, a ``--from`` file that is missing, a bad config).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from edge.config import ConfigError, load
from edge.vision.yunet import MODEL_SHA256

log = logging.getLogger("edge.fetch")

#: Where opencv_zoo publishes the model (its Git LFS copy, served as a plain file).
YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2026may.onnx")

#: The model is about 230 KB; anything far larger is not it.
_MAX_BYTES = 8 << 20
_TIMEOUT_S = 30


class FetchError(RuntimeError):
    """The file could not be had (exit 1)."""


class WrongFile(ValueError):
    """The file is not the pinned one (exit 2)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(url: str, timeout: float = _TIMEOUT_S) -> bytes:
    """The body at ``url``, at most :data:`_MAX_BYTES`.

    Raises:
        FetchError: unreachable, an HTTP error, too large or cut short.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            data = answer.read(_MAX_BYTES + 1)
            expected = answer.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{url}: unreachable ({reason}); on a device without a network, "
                         "copy the file over and pass --from FILE") from None
    if len(data) > _MAX_BYTES:
        raise FetchError(f"{url}: larger than {_MAX_BYTES >> 20} MiB; not the YuNet model")
    if expected is not None and expected.isdigit() and int(expected) != len(data):
        raise FetchError(f"{url}: cut short ({len(data)} of {expected} bytes); try again")
    return data


def install(data: bytes, dest: Path, sha256: str = MODEL_SHA256) -> None:
    """Write ``data`` to ``dest`` (atomically, via a file beside it) if its sha256 is ``sha256``.

    Raises:
        WrongFile: another sha256.
        OSError: ``dest``'s folder cannot be written.
    """
    got = sha256_bytes(data)
    if got != sha256:
        raise WrongFile(f"sha256 {got} is not the pinned {sha256}; nothing written")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_intact(path: Path, sha256: str = MODEL_SHA256) -> bool:
    """Whether ``path`` is a regular file with the pinned sha256."""
    if not path.is_file() or path.stat().st_size > _MAX_BYTES:
        return False
    return sha256_bytes(path.read_bytes()) == sha256


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edge.fetch",
        description="Download a model the repository does not carry (YuNet), check its "
                    "pinned sha256 and put it where the config's detector.model points.")
    p.add_argument("name", choices=("yunet",), help="the model to fetch")
    p.add_argument("--config", help="YAML config whose detector.model says where (default: "
                                    "the built-in default path)")
    p.add_argument("--to", metavar="PATH", help="write here instead of detector.model")
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="copy this file (checked the same way) instead of downloading")
    p.add_argument("--url", default=YUNET_URL,
                   help="download from this address instead (a mirror; the sha256 is "
                        "checked all the same)")
    p.add_argument("--force", action="store_true",
                   help="fetch even when an intact copy is already there")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        dest = Path(args.to) if args.to else Path(load(args.config).detector.model)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if not args.force and is_intact(dest):
        log.info("%s is already there (sha256 %s...)", dest, MODEL_SHA256[:16])
        return 0
    try:
        if args.source:
            source = Path(args.source)
            if not source.is_file():
                log.error("--from %s: no such file", source)
                return 2
            data = source.read_bytes()
        else:
            log.info("downloading %s", args.url)
            data = download(args.url)
        install(data, dest)
    except WrongFile as exc:
        log.error("%s: %s", args.source or args.url, exc)
        return 2
    except FetchError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("%s: cannot write (%s)", dest, exc.strerror or exc)
        return 1
    log.info("wrote %s (%d bytes, sha256 %s...); set detector.kind: yunet to use it", dest,
             len(data), MODEL_SHA256[:16])
    return 0


def _main() -> int:
    try:
        return main()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(_main())
