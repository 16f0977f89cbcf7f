"""``python -m train.through_detector``: how a model agrees with people when its faces come
through the device's detector, and whether levelling the eyes (YuNet's landmarks) helps.

Each test face (48x48) is enlarged four times onto a canvas with its edges extended, as a
face of about 150 pixels in a frame, found by the configured detector, cropped the way the
device crops (and, with YuNet, once more levelled by the eyes, as ``detector.level_eyes``),
and classified by the int8 model. Agreement with the FER+ majority and under the FER+
paper's protocol is reported over the faces the detector found, beside the same faces
classified directly, so the detector's framing and the levelling are the only changes.

    python -m train.through_detector --model models/emotion_ferplus_int8.tflite \\
        --data fer2013.csv.gz --ferplus fer2013new.csv.gz --config yunet.yaml
"""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np

log = logging.getLogger("train.through_detector")

_SCALE, _BORDER = 4, 40


def canvas(face: np.ndarray) -> np.ndarray:
    """The face enlarged ``_SCALE`` times with its edges extended around it."""
    big = cv2.resize(face, None, fx=_SCALE, fy=_SCALE, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, _BORDER, _BORDER, _BORDER, _BORDER, cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    from train.config import OneLineParser
    from train.data import add_data_options, check_data_options

    p = OneLineParser(prog="python -m train.through_detector",
                      description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("--model", default="models/emotion_ferplus_int8.tflite")
    p.add_argument("--config", help="device config: its detector and crop margin")
    p.add_argument("--usage", default="PublicTest")
    add_data_options(p, "the votes the agreement is measured against (required)")
    args = p.parse_args(argv)
    check_data_options(p, args)
    if not args.ferplus:
        p.error("--ferplus: the FER+ votes are what agreement is measured against")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from edge.assemble import STARTUP_ERRORS, build_detector
    from edge.config import load
    from edge.model import EmotionClassifier
    from edge.vision.faces import extract_faces
    from train import ferplus
    from train.data import load as load_faces

    try:
        cfg = load(args.config, {"detector.min_size": 48})
        detector = build_detector(cfg)
        classifier = EmotionClassifier(args.model)
    except STARTUP_ERRORS as exc:
        log.error("%s", exc)
        return 2
    faces = load_faces(args.data, (args.usage,))[args.usage]
    votes = ferplus.load_votes(args.ferplus, faces, args.usage)
    found, framed, level = [], [], []
    for i, face in enumerate(faces.images):
        gray = canvas(face)
        hits = detector.find(gray) if cfg.detector.kind == "yunet" else None
        boxes = [h.box for h in hits] if hits is not None else detector.detect(gray)
        if not boxes:
            continue
        found.append(i)
        framed.append(extract_faces(gray, boxes[:1], cfg.detector.margin)[0].copy())
        if hits:
            lm = hits[0].landmarks
            level.append(extract_faces(gray, boxes[:1], cfg.detector.margin,
                                       eyes=[(lm.right_eye, lm.left_eye)])[0].copy())
    if not found:
        log.error("the detector found none of the %d faces", len(faces.images))
        return 1
    idx = np.asarray(found)
    subset = ferplus.Votes(votes.counts[idx], votes.trusted[idx], votes.source)
    rows = [("the 48x48 faces themselves", faces.images[idx]), ("through the detector",
                                                                np.stack(framed))]
    if level:
        rows.append(("through the detector, eyes levelled", np.stack(level)))
    print(f"{cfg.detector.kind}: found {len(found)} of {len(faces.images)} {args.usage} faces")
    for name, crops in rows:
        predicted = np.argmax(classifier.classify(crops), axis=1)
        m = ferplus.majority_metrics(subset, predicted)
        print(f"  {name:<40} plain majority {100 * m['accuracy']:.2f} % of {m['count']}, "
              f"paper protocol {100 * m['paper']['accuracy']:.2f} % of {m['paper']['count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
