"""The device's own sections of the configuration: source, detector, motion, model,
tracking and pipeline (the outputs are in :mod:`edge.config.outputs`).

Each number's allowed range is declared on its field (:func:`~edge.config.checks.ranged`,
:func:`~edge.config.checks.positive`, :func:`~edge.config.checks.non_negative`) and checked
by the loader; ``_validate`` holds only the rules that tie two fields together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from edge.config.checks import DAY_S, HOUR_S, ConfigError, non_negative, positive, ranged
from edge.config.outputs import Backoff


def camera_index(uri: str | int) -> int | None:
    """The camera index ``uri`` names (``2`` or ``"2"``), or ``None`` for anything else (a
    file, a folder, a glob, a URL). Only ASCII digits: ``int()`` also reads other
    scripts' digits, which no one means as a camera."""
    if isinstance(uri, int):
        return uri
    if uri.isascii() and uri.isdigit() and len(uri) <= 9:
        return int(uri)
    return None


def is_stream(uri: str | int) -> bool:
    """Whether ``uri`` is a URL (``rtsp://``, ``http://`` ...): read by OpenCV, never a
    local path."""
    return isinstance(uri, str) and "://" in uri


def is_glob(uri: str | int) -> bool:
    """Whether ``uri`` is a pattern of image files (``photos/*.jpg``)."""
    return isinstance(uri, str) and not is_stream(uri) and any(c in uri for c in "*?[")


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # an unclosed IPv6 bracket, say
        return False


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from.

    Attributes:
        kind: auto: Picamera2 when installed (Raspberry Pi), else OpenCV; a string uri that
            names images (file, folder or glob) reads still images. Or force: opencv |
            picamera2 | images.
        uri: Camera index (0 = /dev/video0), video file, RTSP/HTTP URL, image file, folder
            or glob.
        width: Capture width asked of a camera, in pixels (files keep their own).
        height: Capture height asked of a camera, in pixels.
        fps: Frame rate asked of a camera.
        loop: Start a video file again when it ends (a demo loop) instead of ending the run
            (also --loop).
        pace: How a video file is played. auto: flat out and once, except with the web page
            on, where it plays at its own frame rate and loops (a demo a person watches);
            on: always at its own rate (and looping); off: always flat out. Cameras and
            streams keep theirs.
        queue_size: Frames waiting for the workers. Live sources drop the OLDEST frame when
            it is full (latency over completeness); files wait and never drop.
        realtime: Force the drop-oldest policy on (true) or off (false); empty: on for
            cameras and streams, off for files.
        stall_timeout_s: Seconds without a new frame before the pipeline counts as stalled
            (systemd's watchdog then restarts the service).
        reconnect: A camera that fails to open or stops delivering is reopened after
            initial_s seconds, doubling up to max_s between attempts; the service keeps
            running meanwhile.
    """

    kind: Literal["auto", "opencv", "picamera2", "images"] = "auto"
    uri: str | int = 0
    width: int = positive(640, 8192)
    height: int = positive(480, 8192)
    fps: float = positive(30.0, 1000)
    loop: bool = False
    pace: Literal["auto", "on", "off"] = "auto"
    queue_size: int = positive(4, 1000)
    realtime: bool | None = None
    stall_timeout_s: float = positive(5.0, HOUR_S)
    reconnect: Backoff = field(default_factory=Backoff)

    def _validate(self, at: str) -> None:
        # OpenCV's V4L2 code crashes the process on a negative index rather than failing.
        index = camera_index(self.uri)
        if (index is not None and not 0 <= index <= 63) or (
                isinstance(self.uri, str) and self.uri.isdigit() and index is None):
            raise ConfigError(f"{at}.uri: a camera index must be in 0..63 (/dev/video<N>), "
                              f"got {str(self.uri)[:20]!r}")
        if isinstance(self.uri, str) and not self.uri.strip():
            raise ConfigError(f"{at}.uri: must not be empty; give a camera index, a video "
                              "or image file, a folder, a glob or a stream URL")
        if is_stream(self.uri) and not _has_host(str(self.uri)):
            raise ConfigError(f"{at}.uri: {self.uri[:80]!r} names no host; give the stream's "
                              "address, e.g. rtsp://camera.local:554/stream")


@dataclass(frozen=True)
class DetectorConfig:
    """Face detection: OpenCV's Haar cascade, or YuNet (a learned detector).

    Attributes:
        kind: haar: OpenCV's Haar cascade (frontal faces; nothing to download; its cost
            grows with each face it follows). yunet: OpenCV's learned detector (turned,
            tilted and small faces too; one pass over the frame whatever the number of
            faces; needs its model file: python -m edge.fetch yunet). See the README, "Which
            detector".
        cascade: haar: OpenCV Haar cascade: default (frontal face), alt2, lbp (needs
            opencv-data), or a path.
        model: yunet: the model file (python -m edge.fetch yunet writes it here; git ignores
            it).
        score_threshold: yunet: the score a face needs (0..1; higher: fewer false faces,
            fewer faces found).
        nms_threshold: yunet: the overlap above which two boxes are one face.
        pass_every: yunet: a pass over the whole frame on one frame in N; in between the
            steady faces keep their boxes (every frame gets a pass while a face is new or
            missed). 1: a pass on every frame (about twice the detector's cost); 2 finds a
            new face a frame later.
        level_eyes: yunet: turn each face's crop so its eyes are level before it is
            classified. On FER+ PublicTest faces through YuNet it agrees with people a
            little more (84.91 % against 84.63 %; python -m train.through_detector), but on
            the 12-face clip at 30 frames/s 17 of 48 changed events went back within a
            second against 10 of 38 without: off.
        detect_width: Widest copy of the frame the detector searches, in pixels; 0: as
            min_size needs. yunet searches one copy where a min_size face is 24 pixels wide
            (720p, min_size 48: 640x360); haar searches each octave of face sizes on the
            copy where those faces are 48-96 pixels wide, so faces down to min_size are
            found at any resolution. A width caps the cost on a large frame and gives up the
            faces smaller than about 48 * frame width / this.
        scale_factor: haar: the cascade's scale step.
        min_neighbors: haar: the neighbours a detection needs (higher: fewer false faces).
        min_size: Smallest face side to report, in full-resolution pixels. Searches reach it
            at any resolution; the smallest sizes cost the most (a 720p frame searched from
            48 pixels costs about 3 times a VGA frame's whole search, spread over the safety
            slices).
        margin: Crop margin around the face box per side, as a fraction of its size, so
            crops are framed like the FER-2013 training faces.
        equalize: Histogram-equalise before detection (helps in flat light; more false
            faces).
        full_every: The periodic schedule, used when motion.enabled is false and whenever
            the moving areas cover most of the frame (the camera panned, the light changed):
            a full-frame search every N frames, in between only windows around the tracked
            faces (a few cascade scales in small windows), with a full search whenever a
            tracked face is not found or nobody is tracked. A frame whose full search costs
            more than a VGA frame's (720p and up) spreads it over the N frames instead, one
            band of face sizes each, largest first, with windows around the known faces in
            every frame. 1 = a full search on every frame (the most expensive).
        region_margin: How far around a tracked face its window reaches (fraction of its
            size).
    """

    kind: Literal["haar", "yunet"] = "haar"
    cascade: str = "default"
    model: str = "models/yunet/face_detection_yunet_2026may.onnx"
    score_threshold: float = ranged(0.6, 0.05, 0.99)
    nms_threshold: float = ranged(0.3, 0.05, 0.95)
    pass_every: int = positive(2, 30)
    level_eyes: bool = False
    detect_width: int = ranged(0, 0, 4096, unit="pixels", note="0: as min_size needs")
    scale_factor: float = ranged(1.1, 1.01, 2.0)
    min_neighbors: int = positive(6, 100)
    min_size: int = positive(48, 4096)
    margin: float = ranged(0.15, 0.0, 1.0)
    equalize: bool = False
    full_every: int = positive(5, 1000)
    region_margin: float = ranged(0.5, 0.0, 3.0)

    def _validate(self, at: str) -> None:
        if 0 < self.detect_width < 80:
            raise ConfigError(f"{at}.detect_width: must be 0 (as min_size needs) or in "
                              f"80..4096 pixels, got {self.detect_width}")


@dataclass(frozen=True)
class MotionConfig:
    """Motion-first detection (:mod:`edge.vision.motion`, :mod:`edge.vision.schedule`).

    Motion-first detection: each frame is compared with the last ones on a tiny gray
    copy (about 0.2 ms, whatever the camera's resolution), and the face cascade runs
    only where it is needed: around the faces in view (followed by template matching in
    between), on moving areas no face explains (someone walking in), and on a slice of a
    full-frame search now and then. A still room with nobody in it costs almost nothing;
    a face in view costs a template match a frame and a small cascade window every few
    frames.

    Attributes:
        enabled: false: the periodic schedule above on every frame (about twice the CPU at
            30 fps with one face in view; see the README's benchmark).
        width: Width of the tiny motion frame in pixels. Wider sees smaller moves, costs
            more (the cost grows with its square; 96 is about 0.2 ms).
        threshold: Change in gray levels (0-255) that counts as motion. Lower: more
            sensitive, and more camera noise searched for nothing; higher: slow or
            low-contrast moves go unseen.
        min_area: Smallest moving blob to search, in tiny-frame pixels (filters single noisy
            pixels).
        max_share: When the moving areas to search cover more than this share of the frame,
            use the periodic schedule instead (searching them would cost more than it).
        safety_every: The safety net for faces that appear without moving: one full-frame
            search spread over safety_slices frames (a band of face sizes each, so no frame
            stalls; the frames evenly spaced, so a live camera's queue has time to drain
            between two), every safety_every frames (30: once a second at 30 fps). Each
            slice costs about 1/safety_slices of a full search. A frame whose full search
            costs more than a VGA frame's gets proportionally more slices (720p: 3 times as
            many), so a slice never costs more than a VGA one's. 0 = off.
        safety_slices: Frames one safety search is spread over (see safety_every).
        search_every: The cascade searches around each face in view on one frame in N (first
            following it by template matching, then in a tight window where it went); in
            between the face is followed by template matching alone (~0.2 ms against ~4-6 ms
            for a cascade window over a large face), or searched when the match is poor. 1 =
            search every frame. Higher is cheaper, but the followed box keeps its size and
            lags the face a little, which can move a "changed" event by a frame or two.
        still_check_every: A tracked face with no motion near it keeps its box without a
            search, and is checked every N frames; 1 = search every face on every frame.
            Above 1 saves the cascade on still faces, but a slowly changing expression
            (below the motion threshold) is then classified on the last box, which can shift
            or drop a short-lived "changed" event.
        classify_every: A steady face that was followed or kept, not found by the cascade,
            in a frame is classified on one frame in N; on the others its latest
            probabilities count again (the crop is the same face a pixel or two away). 1 =
            classify every face on every frame. 2 halves the classifier's work between
            searches (about 1-3 % of a core at 30 fps); the smoothed emotion then lags by at
            most a frame.
    """

    enabled: bool = True
    width: int = ranged(96, 32, 640, unit="pixels")
    threshold: float = ranged(16.0, 1.0, 255.0, unit="gray levels")
    min_area: int = positive(3, 10_000)
    max_share: float = ranged(0.25, 0.0, 1.0, lo_open=True)
    safety_every: int = non_negative(30, 10_000)
    safety_slices: int = positive(4, 16)
    search_every: int = positive(3, 1000)
    still_check_every: int = positive(1, 10_000)
    classify_every: int = positive(2, 1000)

    def _validate(self, at: str) -> None:
        if self.safety_every and self.safety_slices > self.safety_every:
            raise ConfigError(f"{at}.safety_slices: must be at most safety_every "
                              f"({self.safety_every}), got {self.safety_slices}")


@dataclass(frozen=True)
class ModelConfig:
    """The classifier model.

    Attributes:
        path: The TFLite model; its card (same name, .json) gives the labels and input
            contract. Shipped: emotion_ferplus_int8.tflite (default: trained on ten people's
            votes per face, agrees with the FER+ majority on 85.0 % of FER-2013 PublicTest
            faces) and emotion_int8.tflite (trained on FER-2013's own labels: 68.3 % on
            them, the figure FER-2013 papers report). See the README, "The models".
        card: A card at another path (empty: next to the model).
        threads: Interpreter threads per worker.
        runtime: auto tries ai_edge_litert, then tflite_runtime, then tensorflow.lite.
    """

    path: str = "models/emotion_ferplus_int8.tflite"
    card: str | None = None
    threads: int = positive(1, 64)
    runtime: Literal["auto", "litert", "tflite_runtime", "tensorflow"] = "auto"

    def _validate(self, at: str) -> None:
        if self.path.lower().endswith((".keras", ".h5")):
            raise ConfigError(f"{at}.path: {self.path} is a Keras model, which the device "
                              "does not run: convert it with python -m convert.quantize "
                              "--model it, and give the .tflite it writes")


@dataclass(frozen=True)
class QualityConfig:
    """Which crops are worth classifying (:mod:`edge.vision.quality`): a face whose crop
    fails is tracked and counted, and not reported with an emotion until one passes.

    Crops worth classifying. A face whose crop fails one of these is tracked and counted
    (faces in view, the web page's "withheld"), but not classified: it is reported with
    an emotion only once a usable crop arrives, and a reported face's events carry
    "withheld": small|blurred|turned while its latest crop is not usable (its emotion is
    then its last reading). 0 turns a check off.

    Attributes:
        min_face: Smallest face side worth classifying, in full-resolution pixels (the
            model's input is 48; below about 36 the crop is mostly upscaling).
        min_sharpness: Sharpness of the 48x48 crop (variance of its Laplacian). FER-2013's
            test faces are above 317 for 99.5 % of them; 100 withholds faces blurred past
            almost all of them.
        max_turn: yunet only: how far the nose tip sits from the point between the eyes, in
            eye distances (0 facing the camera, about 0.5 at 45 degrees, 1 in profile).
    """

    min_face: int = non_negative(36, 4096)
    min_sharpness: float = non_negative(100.0, 100_000.0)
    max_turn: float = ranged(0.5, 0.0, 10.0, lo_open=True)


@dataclass(frozen=True)
class TrackingConfig:
    """Face identity across frames and temporal smoothing of the emotion.

    Attributes:
        iou_threshold: Minimum box overlap (IoU) to be the same face as in the previous
            frame.
        max_missed: Frames a face may go undetected before it counts as gone ("left" event).
        min_hits: Frames in a row a new face must be seen before its "appeared" event
            (filters the detector's sporadic false positives).
        smoothing: Weight of the newest probabilities in the per-face moving average (1 = no
            smoothing).
        change_frames: Frames a new dominant emotion must hold before a "changed" event.
        change_lead: ... and by how much its smoothed probability must lead the reported
            emotion's on each of those frames (0..1; 0 = being on top is enough). A face
            between two emotions (neutral and sad, say) swaps the winner back and forth; the
            lead keeps such near-ties from becoming "changed" events that revert a moment
            later, and a change back needs the same lead. A clear change is reported about
            one frame later than with 0.
        summary_every_s: Seconds between "summary" events for every face in view (0 = off).
    """

    iou_threshold: float = ranged(0.3, 0.0, 1.0, lo_open=True, hi_open=True)
    max_missed: int = non_negative(10, 10_000)
    min_hits: int = positive(3, 10_000)
    smoothing: float = ranged(0.3, 0.0, 1.0, lo_open=True, note="1 = no smoothing")
    change_frames: int = positive(5, 10_000)
    change_lead: float = ranged(0.1, 0.0, 1.0, hi_open=True,
                                note="0 = the winner alone decides")
    summary_every_s: float = non_negative(0.0, DAY_S)


@dataclass(frozen=True)
class PipelineConfig:
    """Threads, limits and reporting.

    Attributes:
        workers: Detection + classification threads (one interpreter each). Two keep a
            2-core machine busy.
        opencv_threads: Threads OpenCV may use inside one cascade search. 0 = the cores the
            workers leave free, at least 1 (with 2 workers on 2 cores: 1 each, so the
            workers' searches do not queue behind each other's threads; with 1 worker: both
            cores).
        max_frames: Stop after this many frames (0 = no limit).
        stats_every_s: Seconds between stats lines in the log (and systemd STATUS); 0 = off.
        annotate_video: Also write the processed stream with boxes and labels to this video
            file.
    """

    workers: int = ranged(2, 1, 16)
    opencv_threads: int = non_negative(0, 64)
    max_frames: int = non_negative(0)
    stats_every_s: float = non_negative(10.0, DAY_S)
    annotate_video: str | None = None
