"""The service loop around a pipeline: signals, systemd notify and watchdog, stats lines.

``Service.run()`` runs the pipeline (built by :mod:`edge.assemble`) until its source ends
or a signal arrives (0), or a thread fails (1).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from edge.config import Config
from edge.runtime.notify import Notifier
from edge.runtime.pipeline import ABORT_GRACE_S, Pipeline, RunResult
from edge.stats import Count
from edge.vision.plans import describe_detection

log = logging.getLogger(__name__)

#: Seconds a stop may take to drain the queues and flush the sinks before giving up.
STOP_GRACE_S = 1.4


class Service:
    """Runs a pipeline as a long-lived service: signals, stats lines, systemd notify.

    Args:
        cfg: the configuration.
        pipeline: the pipeline to run.
        notifier: systemd notifier (a no-op outside systemd).
    """

    def __init__(self, cfg: Config, pipeline: Pipeline, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.notifier = notifier or Notifier()
        self._stop = threading.Event()
        self._stop_at = 0.0

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        """Ask for a graceful stop (signal handler)."""
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        if not self._stop.is_set():
            self._stop_at = time.monotonic()
        self._stop.set()
        self.pipeline.stop()

    def run(self, install_signals: bool = True) -> RunResult:
        """Run until the source ends, a signal arrives or a thread fails."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        p, stats, notifier = self.pipeline, self.pipeline.stats, self.notifier
        log.info("detector %s; %s", stats.gauge("detector", self.cfg.detector.kind),
                 describe_detection(self.cfg.detector, self.cfg.motion))
        p.start()
        notifier.ready("starting")
        every = self.cfg.pipeline.stats_every_s
        next_stats = time.monotonic() + every if every else float("inf")
        next_ping, last_frames, last_progress = time.monotonic(), -1, time.monotonic()
        stall = self.cfg.source.stall_timeout_s
        drain, abort_grace = 0.4, ABORT_GRACE_S
        while not p.wait(0.25):
            now = time.monotonic()
            if self._stop.is_set() and now - self._stop_at > STOP_GRACE_S:
                # A source blocked in a read (a stalled stream) cannot see the stop flag;
                # give up on draining so the process still ends in time.
                log.warning("pipeline did not drain in %.1f s; stopping anyway", STOP_GRACE_S)
                drain, abort_grace = 0.0, 0.4  # draining is over; abort the rest now
                break
            frames = stats.counter(Count.FRAMES)
            if frames != last_frames:
                last_frames, last_progress = frames, now
            healthy = now - last_progress < stall or stats.gauge("source") == "down"
            if notifier.watchdog_interval and now >= next_ping and healthy:
                notifier.watchdog()
                next_ping = now + notifier.watchdog_interval
            if now >= next_stats:
                line = stats.line()
                log.info("%s", line)
                notifier.status(line)
                next_stats = now + every
        notifier.stopping()
        result = p.join(timeout=drain, abort_grace=abort_grace)
        log.info("%s", stats.line())
        log.info("stopped: %d frames, %d events, %d dropped", result.frames, result.events,
                 result.dropped)
        notifier.close()
        return result
