"""``python -m edge``: run the emotion pipeline as a service (or once over a file)."""

from __future__ import annotations

import argparse
import logging
import sys

from edge.config import camera_index, load, sink_names

log = logging.getLogger("edge")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m edge",
        description="Detect faces, classify their emotion and write events (JSON lines, MQTT).")
    p.add_argument("--config", default=None,
                   help="YAML config (default: built-in defaults; see config.yaml)")
    p.add_argument("--source", help="camera index, video file, stream URL, image/folder/glob, "
                                    "or 'picamera2' (overrides source.uri/kind)")
    p.add_argument("--model", help="the .tflite model (its .json card next to it)")
    p.add_argument("--sink", action="append", choices=sink_names(),
                   help="enable only these sinks (repeatable)")
    p.add_argument("--events", metavar="PATH", help="event log path (sinks.log.path)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--workers", type=int, help="worker threads (pipeline.workers)")
    p.add_argument("--annotate-video", metavar="OUT.mp4",
                   help="also write the stream with boxes and labels to this video")
    p.add_argument("--device", help="device name in events and topics")
    p.add_argument("--web", action="store_true",
                   help="serve the web page, API and /metrics (web.enabled; the web extra); "
                        "a video file then plays at its own rate, looping (source.pace)")
    p.add_argument("--port", type=int, help="the web page's port (web.port; 0: any free one)")
    p.add_argument("--loop", action="store_true",
                   help="start a video file again when it ends (source.loop)")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    """Dotted-key config overrides for the flags that were given."""
    o: dict[str, object] = {}
    if args.source is not None:
        if args.source == "picamera2":
            o["source.kind"] = "picamera2"
        else:
            index = camera_index(args.source)
            o["source.uri"] = index if index is not None else args.source
            o["source.kind"] = "auto"
    if args.model is not None:
        o["model.path"] = args.model
    if args.sink:
        for name in sink_names():
            o[f"sinks.{name}.enabled"] = name in args.sink
    if args.events is not None:
        o["sinks.log.path"] = args.events
    if args.max_frames is not None:
        o["pipeline.max_frames"] = args.max_frames
    if args.workers is not None:
        o["pipeline.workers"] = args.workers
    if args.annotate_video is not None:
        o["pipeline.annotate_video"] = args.annotate_video
    if args.device is not None:
        o["device"] = args.device
    if args.web:
        o["web.enabled"] = True
    if args.loop:
        o["source.loop"] = True
    if args.port is not None:
        o["web.port"] = args.port
    return o


def _hint_for_a_still_image(uri: object) -> None:
    """A photo as the source is one frame, too few for a face to be confirmed and
    reported: say so, and point to the tool for photos."""
    from edge.capture.image_files import IMAGE_SUFFIXES
    from edge.capture.sources import local_path

    path = local_path(uri)
    if path is not None and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        log.warning("%s is a still image: one frame, too few for a face to be confirmed and "
                    "reported (tracking.min_hits); for the faces and emotions in a photo use "
                    "python -m edge.predict %s", uri, uri)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from edge.assemble import STARTUP_ERRORS, build_device
    from edge.runtime.service import Service

    try:
        cfg = load(args.config, overrides_from(args))
        _hint_for_a_still_image(cfg.source.uri)
        device = build_device(cfg)
    except STARTUP_ERRORS as exc:
        # One clear line, no traceback: these are for the user to fix.
        log.error("%s", exc)
        return 2
    with device:
        result = Service(cfg, device.pipeline).run()
    if result.error is not None:
        log.error("stopped by an error: %s", result.error)
        return 1
    failed = {name.split(".", 1)[1]: n for name, n in
              device.pipeline.stats.snapshot()["counters"].items()
              if name.startswith("sink_errors.")}
    if failed:
        log.error("%s could not write everything (%s failed call(s); see above)",
                  ", ".join(f"sink {k}" for k in failed), sum(failed.values()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
