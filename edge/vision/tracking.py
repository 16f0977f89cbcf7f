"""Face identity across frames, per-face smoothing, and the decision to emit an event.

Boxes are associated with existing tracks by IoU (greedy, best first), falling back to
centre distance for fast moves; a track survives ``max_missed`` frames without a
detection. Probabilities are smoothed per track with an exponential moving average, and
the reported emotion changes only when the smoothed winner has led the reported one by at
least ``change_lead`` for ``change_frames`` frames in a row, so labels do not flicker: a
near-tie between two emotions (a face between neutral and sad, say) moves the winner back
and forth without ever holding such a lead, and a change back needs the same lead again.
A new face is reported only once it has been detected ``min_hits`` frames in a row, which
filters out the detector's sporadic false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import TrackingConfig
from edge.events import EmotionEvent, EventType, new_run_id
from edge.vision.boxes import Box, centre_distance, iou


@dataclass
class Track:
    """One face followed over time."""

    id: int
    box: Box
    probs: np.ndarray
    last: np.ndarray  # the latest classification, carried over for a frame without one
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    reported: int = -1
    candidate: int = -1
    candidate_frames: int = 0
    usable: bool = True  # has had a crop worth classifying (edge.vision.quality)
    withheld: str | None = None  # why its latest crop was not classified, if it was not

    @property
    def in_view(self) -> bool:
        """Reported and found in the latest frame: what the page, the annotated video and
        the schedule show or follow as a face in view now."""
        return self.confirmed and self.missed == 0

    @property
    def emotion_index(self) -> int:
        return int(np.argmax(self.probs))


class Tracker:
    """Turns per-frame detections and probabilities into face events.

    Args:
        cfg: tracking settings.
        labels: class names in the model's output order.
        device: device name written into events.
        model_id: model card id written into events.
    """

    def __init__(self, cfg: TrackingConfig, labels: tuple[str, ...], device: str,
                 model_id: str, run: str | None = None) -> None:
        self.cfg = cfg
        self.labels = labels
        self.device = device
        self.model_id = model_id
        #: This run's id, the first part of every event id (new for each run by default).
        self.run = run or new_run_id()
        self._events = 0
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_summary: float | None = None

    def update(self, frame: int, ts: float, mono: float, boxes: list[Box],
               probs: np.ndarray, searched: bool = True,
               withheld: list[str | None] | None = None,
               classified: np.ndarray | None = None) -> list[EmotionEvent]:
        """Advance by one frame; returns the events this frame causes.

        Args:
            frame: frame sequence number.
            ts: wall-clock capture time.
            mono: monotonic capture time.
            boxes: face boxes found in this frame.
            probs: ``(len(boxes), len(labels))`` probabilities, row per box (rows that
                ``classified`` leaves out are not read).
            searched: False when the detector did not look at this frame (the boxes are
                faces kept from its last pass): a face without a box then misses nothing.
            withheld: per box, why its crop was not worth classifying (it is then not
                classified), or None. Such a face is tracked and counted; it is reported,
                with its emotion, only once it has had a usable crop.
            classified: per box, whether ``probs`` holds a new classification of it
                (default: all). A face followed without one counts its latest
                classification again; such a box never starts a new face.
        """
        at = (frame, ts, mono)
        why = withheld or [None] * len(boxes)
        fresh = np.ones(len(boxes), bool) if classified is None else classified
        matches, new_boxes = self._associate(boxes)
        events = [e for track, i in matches
                  for e in self._seen(track, boxes[i], probs[i] if fresh[i] else None,
                                      why[i], at)]
        if searched:
            matched = {id(t) for t, _ in matches}
            events += self._missed([t for t in self.tracks if id(t) not in matched], at)
        for i in new_boxes:
            events += self._start(boxes[i], probs[i] if fresh[i] else None, why[i], at)
        return events + self._summaries(at)

    def _seen(self, track: Track, box: Box, row: np.ndarray | None, withheld: str | None,
              at: tuple[int, float, float]) -> list[EmotionEvent]:
        """A tracked face found again (``row``: its new classification, if any): its box,
        its smoothed emotion, and what changed."""
        track.box, track.withheld = box, withheld
        if row is not None:
            track.last = row
            if not track.usable:  # its first reading: nothing to smooth with
                track.usable, track.probs = True, row.astype(np.float64)
        alpha = self.cfg.smoothing
        track.probs = (1.0 - alpha) * track.probs + alpha * track.last
        track.hits += 1
        track.missed = 0
        if track.confirmed:
            return self._check_change(track, *at)
        if track.hits >= self.cfg.min_hits and track.usable:
            return [self._confirm(track, *at)]
        return []

    def _missed(self, tracks: list[Track], at: tuple[int, float, float]) -> list[EmotionEvent]:
        """Faces the detector looked for and did not find; those gone for good leave."""
        events = []
        for track in tracks:
            track.missed += 1
            # A face must be seen min_hits frames in a row to count; a tentative track
            # that misses a frame was most likely a false detection.
            if not track.confirmed or track.missed > self.cfg.max_missed:
                self.tracks.remove(track)
                if track.confirmed:
                    events.append(self._event(track, "left", *at))
        return events

    def _start(self, box: Box, row: np.ndarray | None, withheld: str | None,
               at: tuple[int, float, float]) -> list[EmotionEvent]:
        """A box no track matched: a new face (not from a followed box with no reading)."""
        if withheld is not None:
            flat = np.full(len(self.labels), 1.0 / len(self.labels))
            track = Track(self._next_id, box, flat, flat, usable=False, withheld=withheld)
        elif row is None:
            return []
        else:
            track = Track(self._next_id, box, row.astype(np.float64).copy(), row)
        self._next_id += 1
        self.tracks.append(track)
        if self.cfg.min_hits <= 1 and track.usable:
            return [self._confirm(track, *at)]
        return []

    def _summaries(self, at: tuple[int, float, float]) -> list[EmotionEvent]:
        """Every confirmed face's state, once per ``summary_every_s``."""
        mono = at[2]
        if self.cfg.summary_every_s <= 0:
            return []
        if self._last_summary is None:
            self._last_summary = mono
            return []
        if mono - self._last_summary < self.cfg.summary_every_s:
            return []
        self._last_summary = mono
        return [self._event(t, "summary", *at) for t in self.tracks if t.confirmed]

    def in_view(self) -> list[Track]:
        """The faces :attr:`Track.in_view` now."""
        return [t for t in self.tracks if t.in_view]

    def counted(self) -> int:
        """Faces in view: the reported ones and those seen long enough whose emotion is
        withheld (:meth:`withheld`)."""
        return sum(1 for t in self.tracks if t.confirmed or t.hits >= self.cfg.min_hits)

    def withheld(self) -> dict[str, int]:
        """Faces in view whose latest crop was not classified, by reason."""
        counts: dict[str, int] = {}
        for t in self.tracks:
            if t.withheld and (t.confirmed or t.hits >= self.cfg.min_hits):
                counts[t.withheld] = counts.get(t.withheld, 0) + 1
        return counts

    def flush(self, frame: int, ts: float, mono: float) -> list[EmotionEvent]:
        """End of stream: every confirmed face leaves."""
        events = [self._event(t, "left", frame, ts, mono) for t in self.tracks if t.confirmed]
        self.tracks.clear()
        return events

    def dominant(self) -> str | None:
        """The most common reported emotion among the faces in view (None when empty)."""
        counts: dict[int, int] = {}
        for t in self.tracks:
            if t.confirmed:
                counts[t.reported] = counts.get(t.reported, 0) + 1
        return self.labels[max(counts, key=counts.get)] if counts else None

    def _associate(self, boxes: list[Box]) -> tuple[list[tuple[Track, int]], list[int]]:
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        used_t: set[int] = set()
        used_b: set[int] = set()
        matches: list[tuple[Track, int]] = []
        for score, ti, bi in pairs:
            if score < self.cfg.iou_threshold:
                break
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            matches.append((self.tracks[ti], bi))
        # Fast moves (or a low frame rate): little overlap, but the centre moved less than
        # three quarters of a face width.
        for ti, t in enumerate(self.tracks):
            if ti in used_t:
                continue
            best, best_d = -1, float("inf")
            for bi, b in enumerate(boxes):
                if bi in used_b:
                    continue
                d = centre_distance(t.box, b)
                if d < 0.75 * max(t.box[2], b[2]) and d < best_d:
                    best, best_d = bi, d
            if best >= 0:
                used_t.add(ti)
                used_b.add(best)
                matches.append((t, best))
        return matches, [bi for bi in range(len(boxes)) if bi not in used_b]

    def _confirm(self, track: Track, frame: int, ts: float, mono: float) -> EmotionEvent:
        track.confirmed = True
        track.reported = track.emotion_index
        return self._event(track, "appeared", frame, ts, mono)

    def _check_change(self, track: Track, frame: int, ts: float,
                      mono: float) -> list[EmotionEvent]:
        winner = track.emotion_index
        lead = track.probs[winner] - track.probs[track.reported]
        if winner == track.reported or lead < self.cfg.change_lead:
            track.candidate, track.candidate_frames = -1, 0
            return []
        if winner == track.candidate:
            track.candidate_frames += 1
        else:
            track.candidate, track.candidate_frames = winner, 1
        if track.candidate_frames < self.cfg.change_frames:
            return []
        track.reported = winner
        track.candidate, track.candidate_frames = -1, 0
        return [self._event(track, "changed", frame, ts, mono)]

    def _event(self, track: Track, kind: EventType, frame: int, ts: float,
               mono: float) -> EmotionEvent:
        idx = track.reported if track.reported >= 0 else track.emotion_index
        probs = {label: float(p) for label, p in zip(self.labels, track.probs, strict=True)}
        self._events += 1
        return EmotionEvent(
            ts=ts, device=self.device, face=track.id, type=kind, emotion=self.labels[idx],
            confidence=float(track.probs[idx]), probs=probs, box=track.box, frame=frame,
            model=self.model_id, id=f"{self.run}-{self._events}", captured_mono=mono,
            withheld=track.withheld)
