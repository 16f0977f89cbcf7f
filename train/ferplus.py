"""FER+ votes: ten annotators' labels for every FER-2013 face, joined to the CSV by row.

FER-2013's own labels come from one annotator per face and disagree with the FER+ crowd
majority on about a third of the faces. The FER+ file (``fer2013new.csv``, Barsoum et al.
2016) has one row per FER-2013 row, in the same order, with vote counts over ten columns:
the seven FER-2013 emotions under other names and in another order, ``contempt`` (no
FER-2013 class), ``unknown`` and ``NF`` (not a face).

Here the votes become two things:

* the **majority label** (the column with the most votes, the first column on a tie), which
  is what "agrees with people" is scored against; faces whose majority is contempt,
  unknown or not-a-face have no such label and are left out (and counted);
* a **vote distribution** over the seven emotions to train on (the FER+ paper's best
  mode): a column with a single vote is one annotator's outlier and is dropped unless it
  is all there is, contempt/unknown/NF votes are dropped, and the rest normalised.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.preprocessing import EMOTIONS
from train.data import open_text, smoothed_onehot
from train.faceset import DataError, FaceSet, subset
from train.metrics import classification_metrics

log = logging.getLogger(__name__)

#: The vote columns, in the file's order.
COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                            "fear", "contempt", "unknown", "NF")

#: FER+ column name -> FER-2013 emotion; the columns not here have no FER-2013 class.
_TO_EMOTION: dict[str, str] = {"anger": "angry", "disgust": "disgust", "fear": "fear",
                               "happiness": "happy", "sadness": "sad", "surprise": "surprise",
                               "neutral": "neutral"}

#: For each FER+ column, the label id it maps to in :data:`EMOTIONS`, or -1.
_LABEL_OF_COLUMN = np.array([EMOTIONS.index(_TO_EMOTION[c]) if c in _TO_EMOTION else -1
                             for c in COLUMNS])

#: FER-2013 data rows (0-based, header excluded) that the published CSV copies filled in
#: from other renderings, out of order among themselves: their FER+ votes may belong to
#: another of these rows, so they are left out wherever the votes are used.
_UNORDERED_ROWS_TEXT = """
17 23 59 170 501 633 639 1303 1648 2059 2171 2658 2671 2809 3177 3185 3262 3336 3385 3403
3549 3931 4069 4275 4327 4521 5051 5082 5274 5439 5478 5509 5722 5881 5935 6102 6202 6369
6458 6478 6541 6646 6699 6708 7015 7172 7496 7527 7629 7965 8030 8567 8627 8737 8856 9026
9121 9256 9264 9474 9500 9673 9679 9693 9797 10023 10423 10713 10792 10930 11031 11244 11286
11295 11626 11846 12289 12352 12465 12840 13011 13148 13402 13697 13988 14148 14279 14702
15013 15144 15553 15668 15838 15894 15966 15975 16024 16180 16540 16622 16885 17081 17251
17620 17947 18012 18337 18492 18625 18912 19238 19422 19632 19638 19997 20222 20712 20817
21320 21792 21817 21937 22063 22198 22314 22407 22550 22638 22813 22927 23047 23320 23561
23596 23894 24053 24191 24441 24593 24891 24971 25168 25219 25603 25909 26383 26860 26897
28601 29447 29557 30002 30705 30981 31127 31734 31825 32032 32257"""
UNORDERED_ROWS: frozenset[int] = frozenset(map(int, _UNORDERED_ROWS_TEXT.split()))

#: The label of a contempt face under the paper's protocol: an eighth class, past the
#: seven of :data:`EMOTIONS`, so no prediction of ours equals it.
CONTEMPT = len(EMOTIONS)

#: What the two FER+ figures are called in cards, logs and reports.
PAPER_PROTOCOL = ("FER+ paper protocol: single votes dropped, faces whose top emotion holds "
                  "more than half of the rest, 8 classes (contempt counted as a miss)")
PLAIN_MAJORITY = "every face's plain majority emotion, 7 classes"

#: Training modes of ``python -m train --labels``.
LABEL_MODES: tuple[str, ...] = ("fer2013", "ferplus", "mixed")


@dataclass(frozen=True)
class Votes:
    """FER+ vote counts for the faces of one :class:`FaceSet`, in the same order.

    Attributes:
        counts: ``(N, 10)`` votes per face, columns as :data:`COLUMNS`.
        trusted: ``(N,)`` False where the face's votes may belong to another face
            (:data:`UNORDERED_ROWS`).
        source: the votes file, for messages and cards.
    """

    counts: np.ndarray
    trusted: np.ndarray
    source: str

    def majority(self) -> np.ndarray:
        """``(N,)`` label ids of the majority emotion; -1 where it is not one of the seven.

        The majority is the column with the most votes, the first column on a tie; a face
        whose majority is contempt, unknown or not-a-face, or whose votes are not trusted,
        gets -1.
        """
        labels = _LABEL_OF_COLUMN[np.argmax(self.counts, axis=1)]
        return np.where(self.trusted, labels, -1)

    def paper_majority(self) -> np.ndarray:
        """``(N,)`` labels under the FER+ paper's majority protocol; -1 where a face does
        not count.

        As ``ferplus.py`` of microsoft/FERPlus does: every single vote (any column) is
        dropped as an outlier; a face counts only when its top column then holds more
        than half of the remaining votes and is an emotion (not unknown, not not-a-face).
        Contempt, the eighth class, is :data:`CONTEMPT`: a model of the seven FER-2013
        emotions can never name it, so those faces count as misses. Faces whose votes are
        not trusted (:data:`UNORDERED_ROWS`) do not count either.
        """
        kept = np.where(self.counts > 1, self.counts, 0)
        total = kept.sum(axis=1)
        top = np.argmax(kept, axis=1)
        peak = kept[np.arange(len(kept)), top]
        label = np.where(np.asarray(COLUMNS)[top] == "contempt", CONTEMPT,
                         _LABEL_OF_COLUMN[top])
        counts = (2 * peak > total) & (label >= 0) & self.trusted
        return np.where(counts, label, -1)

    def left_out(self) -> dict[str, int]:
        """How many faces have no majority emotion, by reason."""
        top = np.asarray(COLUMNS)[np.argmax(self.counts, axis=1)]
        out = {"untrusted_row": int((~self.trusted).sum())}
        for name in ("contempt", "unknown", "NF"):
            out[name] = int(((top == name) & self.trusted).sum())
        return out

    def distributions(self) -> np.ndarray:
        """``(N, 7)`` float32 vote shares over :data:`EMOTIONS` (rows of zeros: no votes).

        Single votes are dropped as one annotator's outlier, as the FER+ paper does,
        unless no emotion has more than one vote.
        """
        emotion_votes = np.zeros((len(self.counts), len(EMOTIONS)), np.float64)
        for col, label in enumerate(_LABEL_OF_COLUMN):
            if label >= 0:
                emotion_votes[:, label] = self.counts[:, col]
        kept = np.where(emotion_votes > 1, emotion_votes, 0.0)
        kept = np.where(kept.sum(axis=1, keepdims=True) > 0, kept, emotion_votes)
        total = kept.sum(axis=1, keepdims=True)
        return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0).astype(np.float32)


def majority_metrics(votes: Votes, predictions: np.ndarray) -> dict:
    """How often ``predictions`` (label ids) name the FER+ majority emotion.

    Returns:
        :func:`train.metrics.classification_metrics` against the majority, over the faces
        that have one, plus ``left_out`` (faces without one, by reason) and ``paper``
        (:func:`paper_metrics`, the FER+ paper's protocol on the same predictions).
    """
    predictions = np.asarray(predictions)
    majority = votes.majority()
    scored = majority >= 0
    result = classification_metrics(majority[scored], predictions[scored])
    result["protocol"] = PLAIN_MAJORITY
    result["left_out"] = votes.left_out()
    result["votes"] = votes.source
    result["paper"] = paper_metrics(votes, predictions)
    return result


def paper_metrics(votes: Votes, predictions: np.ndarray) -> dict:
    """Accuracy under the FER+ paper's majority protocol (:meth:`Votes.paper_majority`),
    the figure papers publish: ``accuracy``, ``count`` (faces that count), ``contempt``
    (of those, contempt faces: misses by construction) and ``protocol``."""
    labels = votes.paper_majority()
    scored = labels >= 0
    right = int((labels[scored] == np.asarray(predictions)[scored]).sum())
    count = int(scored.sum())
    return {"protocol": PAPER_PROTOCOL, "count": count,
            "accuracy": round(right / max(count, 1), 4),
            "contempt": int((labels == CONTEMPT).sum())}


def paper_line(paper: dict) -> str:
    """One line for a :func:`paper_metrics` result, as reports print it."""
    return (f"FER+ paper protocol (what papers publish): accuracy {paper['accuracy']:.4f} "
            f"of {paper['count']:,} faces ({paper['contempt']} contempt faces, counted as "
            "misses: the model has no contempt class)")


def load_votes(path: str | Path, faces: FaceSet, usage: str) -> Votes:
    """The FER+ votes of ``faces``, joined by their row in the FER-2013 CSV.

    Args:
        path: ``fer2013new.csv`` (plain or ``.gz``), one row per FER-2013 row.
        faces: faces loaded from a FER-2013 CSV (:func:`train.data.load`), which carry
            their row numbers.
        usage: the split ``faces`` were loaded as (``Training``, ``PublicTest``).

    Raises:
        DataError: the file is missing or malformed, the faces come from an image folder
            (no row order to join on), or the splits do not line up (the message names the
            first row whose ``Usage`` differs).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such FER+ votes file")
    if faces.rows is None:
        raise DataError(f"{faces.source}: FER+ votes join the FER-2013 CSV by row, and an "
                        "image folder has no rows; train from the CSV")
    usages, counts = _read(p)
    if faces.rows.size and int(faces.rows.max()) >= len(usages):
        raise DataError(f"{p}: {len(usages)} rows, but {faces.source} has data row "
                        f"{int(faces.rows.max())}; pass the votes for this FER-2013 file")
    mismatch = np.flatnonzero(usages[faces.rows] != usage)
    if mismatch.size:
        row = int(faces.rows[mismatch[0]])
        raise DataError(f"{p}: data row {row} is '{usages[row]}' but FER-2013 row {row} is "
                        f"'{usage}'; the two files' splits do not line up")
    trusted = np.array([int(r) not in UNORDERED_ROWS for r in faces.rows], dtype=bool)
    return Votes(counts[faces.rows], trusted, f"{p} [{usage}]")


def relabel(faces: FaceSet, votes: Votes, mode: str, weight: float = 0.5,
            label_smoothing: float = 0.0) -> FaceSet:
    """``faces`` with training targets from the votes, for ``python -m train --labels``.

    Args:
        faces: FER-2013 faces with their original labels.
        votes: their FER+ votes (:func:`load_votes`).
        mode: ``ferplus`` keeps the faces with a FER+ majority emotion, labelled with it,
            their targets the vote distributions; ``mixed`` keeps every face and its
            original label, with targets ``(1 - weight) * smoothed one-hot + weight *
            votes`` (one-hot alone where the votes name no emotion or are not trusted).
        weight: the votes' share of a ``mixed`` target, in [0, 1].
        label_smoothing: applied to the one-hot part of a ``mixed`` target.

    Raises:
        ValueError: an unknown mode or a weight outside [0, 1].
    """
    majority, dist = votes.majority(), votes.distributions()
    if mode == "ferplus":
        keep = np.flatnonzero(majority >= 0)
        log.info("FER+ labels: %d of %d faces of %s kept; %d left out (majority contempt, "
                 "unknown or not a face, or votes not trusted)", len(keep), len(faces),
                 faces.source, len(faces) - len(keep))
        kept = subset(faces, keep, "(FER+ majority)")
        return FaceSet(kept.images, majority[keep], kept.source, kept.rows, dist[keep],
                       labelled_by="FER+ majority")
    if mode == "mixed":
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"ferplus weight: {weight} is not in [0, 1]")
        usable = (majority >= 0)[:, None]
        onehot = smoothed_onehot(faces.labels, label_smoothing)
        targets = np.where(usable, (1.0 - weight) * onehot + weight * dist, onehot)
        log.info("mixed labels: %d of %d faces blend %.0f %% FER+ votes into the label",
                 int(usable.sum()), len(faces), 100 * weight)
        return FaceSet(faces.images, faces.labels, faces.source, faces.rows,
                       targets.astype(np.float32))
    raise ValueError(f"labels: unknown mode '{mode}'; use one of {', '.join(LABEL_MODES)}")


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every row's ``Usage`` and its ``(10,)`` vote counts."""
    usages: list[str] = []
    counts: list[list[int]] = []
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("Usage", *COLUMNS) if c not in header]
        if missing:
            raise DataError(f"{path}: line 1: header lacks column(s) {missing}; expected the "
                            "FER+ layout 'Usage,Image name,neutral,...,unknown,NF'")
        i_use = header.index("Usage")
        cols = [header.index(c) for c in COLUMNS]
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                votes = [int(row[i]) for i in cols]
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {line_no}: vote counts must be integers in "
                                f"the columns {', '.join(COLUMNS)}") from None
            if min(votes) < 0:
                raise DataError(f"{path}: line {line_no}: a vote count is negative")
            usages.append(row[i_use].strip())
            counts.append(votes)
    return np.asarray(usages), np.asarray(counts, dtype=np.int64).reshape(-1, len(COLUMNS))
