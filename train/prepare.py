"""``python -m train.prepare PHOTOS OUT``: your photos as the 48x48 faces training uses.

``PHOTOS`` holds one folder per class (``PHOTOS/happy/*.jpg`` ...; an optional
``PHOTOS/test/<class>/`` too). Each photo's one face is found and cropped by the device's
own detector and preprocessing and written to ``OUT/<class>/<photo>.png`` (and
``OUT/test/<class>/``), ready for ``python -m train --data OUT``. The faces per class are
counted; photos with no face or several faces are left out and listed, all of them, in
``OUT/rejected.txt``. Exit codes: 0 done, 1 an output that cannot be written, 2 bad input
or no usable face.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("train.prepare")


def prepare(photos: Path, out: Path, config: str | None = None) -> int:
    """Crop every class folder of ``photos`` into ``out`` with the detector of ``config``
    (a device config file; default: the built-in defaults); returns the faces written."""

    from edge.assemble import build_detector
    from edge.capture.image_files import write_image
    from edge.config import load
    from edge.preprocessing import EMOTIONS
    from train.own_faces import HELD_OUT, TINY_TEST, CropReport, crop_faces

    device = load(config)
    cfg = device.detector
    detector = build_detector(device)
    written = 0
    rejected: list[str] = []
    listing = out / "rejected.txt"
    for source, target in ((photos, out), (photos / "test", out / "test")):
        if not source.is_dir():
            continue
        report = CropReport()
        faces, labels, files = crop_faces(source, detector, cfg.margin, report)
        report.log(source, listed_in=listing)
        rejected += [f"{p}\t{why}" for p, why in report.rejects()]
        counts = {name: labels.count(i) for i, name in enumerate(EMOTIONS)}
        log.info("%s: faces per class: %s", source,
                 ", ".join(f"{name} {n}" for name, n in counts.items()))
        # The test share: the test/ folder, or what train holds out of these faces.
        test = len(faces) if target != out else round(HELD_OUT * len(faces))
        if (target != out or not (photos / "test").is_dir()) and 0 < test < TINY_TEST:
            log.warning("%s: about %d face(s) will be tested on, too few for an accuracy to "
                        "compare models by; add photos (at least %d test faces)", source,
                        test, TINY_TEST)
        taken: set[str] = set()
        for face, label, photo in zip(faces, labels, files, strict=True):
            folder = target / EMOTIONS[label]
            folder.mkdir(parents=True, exist_ok=True)
            write_image(folder / _distinct(photo, folder, taken), face)
            written += 1
    if rejected:
        out.mkdir(parents=True, exist_ok=True)
        listing.write_text("photo\treason\n" + "\n".join(rejected) + "\n")
        log.info("%d photo(s) left out, each listed with why in %s", len(rejected), listing)
    return written


def _distinct(photo: Path, folder: Path, taken: set[str]) -> str:
    """An output name for ``photo`` no other photo of this run has taken in ``folder``
    (``a.jpg``, ``a.png`` and ``A.JPG`` are three faces, on a case-blind disk too)."""
    name = f"{photo.stem}.png"
    if f"{folder}/{name}".lower() in taken:
        name = f"{photo.stem}_{photo.suffix.lstrip('.').lower()}.png"
    n = 2
    while f"{folder}/{name}".lower() in taken:
        name, n = f"{photo.stem}_{photo.suffix.lstrip('.').lower()}_{n}.png", n + 1
    taken.add(f"{folder}/{name}".lower())
    return name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.prepare",
                                description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("photos", help="folder of class folders (happy/, sad/, ...) of photos")
    p.add_argument("out", help="folder to write the 48x48 faces to")
    p.add_argument("--config", help="the device's YAML config: its detector (haar or yunet) "
                                    "and crop settings find the faces (default: built-in)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.own_faces import is_own_faces

    photos, out = Path(args.photos).resolve(), Path(args.out).resolve()
    if out == photos or photos in out.parents:
        log.error("%s: the output folder is inside the photos; give another folder, so "
                  "no photo is overwritten by its crop", args.out)
        return 2
    if not is_own_faces(photos):
        log.error("%s: expected class folders (happy/, sad/, neutral/ ...) of photos", photos)
        return 2
    from edge.assemble import STARTUP_ERRORS

    try:
        written = prepare(photos, Path(args.out), args.config)
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("%s", exc)
        return 1
    if not written:
        log.error("%s: no usable face", photos)
        return 2
    log.info("wrote %d face(s) to %s; train on them with python -m train --data %s",
             written, args.out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
