"""The threaded pipeline: ordering, drop-oldest, clean stop, failures, sink isolation."""

from __future__ import annotations

import threading
import time

import pytest

from edge.capture.queues import FrameQueue
from edge.capture.sources import SourceError
from edge.frames import Frame
from edge.runtime.pipeline import END, _End
from tests.fakes import BrokenSink, FakeClassifier, FakeSource, make
from tests.fixtures import wait_until


def test_frame_queue_drops_oldest_and_numbers_without_gaps() -> None:
    q: FrameQueue[object] = FrameQueue(2, drop_oldest=True, keep=_End)
    stop = threading.Event()
    for i in range(5):
        q.offer(i, stop)
    assert q.dropped == 3
    assert [q.take(0), q.take(0)] == [(0, 3), (1, 4)]
    assert q.take(0) is None
    q.offer(END, stop)
    q.offer(END, stop)
    q.offer(END, stop)  # end markers are never dropped
    assert len(q) == 3 and q.dropped == 3


def test_file_queue_waits_instead_of_dropping() -> None:
    q: FrameQueue[str] = FrameQueue(1, drop_oldest=False)
    stop = threading.Event()
    q.offer("a", stop)
    offered: list[bool] = []
    waiter = threading.Thread(target=lambda: offered.append(q.offer("b", stop)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and offered == []  # a full file queue waits for room
    assert q.take(1.0) == (0, "a")
    waiter.join(10.0)
    assert offered == [True] and q.take(1.0) == (1, "b") and q.dropped == 0
    # A stop while waiting gives up instead of blocking forever.
    q.offer("c", stop)
    stop.set()
    assert q.offer("d", stop) is False


def test_results_are_reordered_with_several_workers() -> None:
    classifiers = [FakeClassifier(jitter=0.01, seed=i) for i in range(3)]
    p, sink, seen = make(FakeSource(60, live=False), classifiers)
    result = p.run()
    assert result.error is None
    assert seen == list(range(60))  # every frame, in capture order
    assert sum(c.calls for c in classifiers) == 60
    assert all(c.calls > 0 for c in classifiers)
    assert [e.type for e in sink.events] == ["appeared", "left"]
    assert result.dropped == 0 and result.frames == 60


def test_live_source_drops_oldest_when_behind_and_counts() -> None:
    src = FakeSource(80, live=True, period=0.001)
    p, _, seen = make(src, [FakeClassifier(delay=0.01)], queue_size=2)
    result = p.run()
    assert result.error is None
    assert result.dropped > 0
    assert len(seen) + result.dropped == 80
    assert seen == sorted(seen)


def test_clean_stop_under_load_flushes_events() -> None:
    p, sink, _ = make(FakeSource(None, live=True, period=0.002),
                      [FakeClassifier(delay=0.005), FakeClassifier(delay=0.005)])
    p.start()
    assert wait_until(lambda: p.stats.counter("frames") > 20)  # mid-stream, under load
    t0 = time.monotonic()
    p.stop()
    assert p.wait(2.0)
    result = p.join(2.0)
    assert time.monotonic() - t0 < 2.0
    assert result.error is None and result.frames > 10
    assert [e.type for e in sink.events] == ["appeared", "left"]  # the face left at stop
    assert sink.flushed == 1 and sink.closed


def test_worker_exception_ends_the_run_quickly() -> None:
    p, _, _ = make(FakeSource(None, live=True), [FakeClassifier(fail_on=5)])
    t0 = time.monotonic()
    result = p.run()
    assert time.monotonic() - t0 < 2.0
    assert isinstance(result.error, RuntimeError)
    assert "interpreter exploded" in str(result.error)


def test_file_source_error_ends_the_run() -> None:
    p, _, _ = make(FakeSource(50, live=False, fail_at={10}), [FakeClassifier()])
    result = p.run()
    assert isinstance(result.error, SourceError)


def test_live_source_failure_is_retried_and_recovers() -> None:
    src = FakeSource(40, live=True, fail_at={10, 11})
    p, _sink, seen = make(src, [FakeClassifier()], reconnect=(0.05, 0.1), drop_oldest=False)
    result = p.run()
    assert result.error is None
    assert src.opens == 3  # first open, then one reopen per failure
    assert result.stats["counters"]["source_reconnects"] == 2
    assert len(seen) == 40


def test_camera_that_fails_to_open_is_retried_and_reported() -> None:
    back = threading.Event()
    src = FakeSource(20, live=True, reopen_gate=back)
    p, _sink, seen = make(src, [FakeClassifier()], reconnect=(0.02, 0.05), drop_oldest=False)
    p.start()
    # Reported while it is away, and retried until it comes back.
    assert wait_until(lambda: p.stats.gauge("source") == "down" and src.opens >= 3)
    back.set()
    assert p.wait(10.0)
    result = p.join()
    assert result.error is None and len(seen) == 20
    assert result.stats["gauges"]["source"] == "ok"
    # Every open but the first and the last is a retry that failed.
    assert result.stats["counters"]["source_errors"] == src.opens - 2


def test_a_failing_sink_does_not_stop_the_run(caplog: pytest.LogCaptureFixture) -> None:
    broken = BrokenSink()
    p, sink, seen = make(FakeSource(30, live=False), [FakeClassifier()], sinks=[broken])
    result = p.run()
    assert result.error is None and len(seen) == 30
    assert [e.type for e in sink.events] == ["appeared", "left"]
    assert result.stats["counters"]["sink_errors.broken"] == 2
    assert caplog.text.count("disk full") == 1  # logged once, counted every time


def test_status_reaches_sinks_in_their_thread_from_stats() -> None:
    p, sink, _ = make(FakeSource(None, live=False, period=0.02), [FakeClassifier()],
                      status_every_s=0.05)
    p.start()
    assert wait_until(lambda: any(s["frames"] > 0 for s in sink.statuses), timeout=30)
    p.stop()
    p.join()
    assert all(set(s) >= {"faces", "fps", "source", "frames"} for s in sink.statuses)


def test_max_frames() -> None:
    p, _, seen = make(FakeSource(None, live=False), [FakeClassifier()], max_frames=7)
    assert p.run().error is None and seen == list(range(7))


class BlockingSource(FakeSource):
    """A stream that stalls: read() blocks (as a dead RTSP connection can)."""

    def read(self) -> Frame | None:
        if self.n >= 5:
            time.sleep(3600)
        return super().read()


def test_service_stops_in_time_even_when_the_source_blocks() -> None:
    from edge.config import load
    from edge.runtime.service import Service

    p, sink, _ = make(BlockingSource(None, live=True), [FakeClassifier()])
    service = Service(load(None), p)
    threading.Timer(0.5, service.request_stop).start()
    t0 = time.monotonic()
    service.run(install_signals=False)
    assert time.monotonic() - t0 < 2.5
    assert sink.closed


def test_a_camera_that_is_not_there_is_announced_once(caplog: pytest.LogCaptureFixture) -> None:
    back = threading.Event()
    src = FakeSource(3, live=True, reopen_gate=back)
    p, _sink, seen = make(src, [FakeClassifier()], reconnect=(0.01, 0.02), drop_oldest=False)
    with caplog.at_level("INFO"):
        p.start()
        assert wait_until(lambda: src.opens >= 6)
        back.set()
        assert p.wait(10.0)
        p.join()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings  # the same cause is said once, not per retry
    assert "cannot open video source 0; retrying every" in warnings[0]
    assert "source is back" in caplog.text and len(seen) == 3
