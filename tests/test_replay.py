"""The MQTT sink's replay window (edge/sinks/replay.py): which acknowledged events are
published again after a reconnect, whatever order the delivery thread sees things in."""

from __future__ import annotations

from edge.sinks.replay import ReplayWindow


def drain(window: ReplayWindow) -> list[str]:
    out = []
    while (item := window.next()) is not None:
        out.append(item[1])
        window.sent()
    return out


def test_the_window_ends_at_the_lost_connections_last_acknowledgement() -> None:
    window = ReplayWindow(5.0)
    for n, at in enumerate([0.0, 10.0, 20.0, 21.0, 24.0]):
        window.acked(at, 1, "t", f"e{n}")
    assert window.reconnected(2) == 3
    assert drain(window) == ["e2", "e3", "e4"]


def test_the_first_connection_replays_nothing_and_each_reconnect_once() -> None:
    window = ReplayWindow(5.0)
    assert window.reconnected(1) == 0
    window.acked(1.0, 1, "t", "e0")
    assert window.reconnected(2) == 1
    assert window.reconnected(2) == 0
    assert drain(window) == ["e0"]


def test_acknowledgements_of_the_new_connection_do_not_move_the_window() -> None:
    # The new connection's first acknowledgements (60 s later) reach the delivery thread
    # before it notices the reconnect: the window still ends at the lost connection's last.
    window = ReplayWindow(5.0)
    for n in range(10):
        window.acked(float(n) / 10, 1, "t", f"old{n}")
    window.acked(60.0, 2, "t", "new0")
    window.acked(61.0, 2, "t", "new1")
    assert window.reconnected(2) == 10
    assert drain(window) == [f"old{n}" for n in range(10)]


def test_a_window_left_half_published_goes_out_on_the_next_connection() -> None:
    window = ReplayWindow(5.0)
    for n in range(4):
        window.acked(1.0, 1, "t", f"e{n}")
    window.reconnected(2)
    assert window.next() == ("t", "e0")
    window.sent()  # the connection drops before the rest
    assert window.due == 3
    assert window.reconnected(3) == 0  # connection 2 acknowledged nothing
    assert drain(window) == ["e1", "e2", "e3"]


def test_events_published_again_are_at_risk_again_on_the_next_connection() -> None:
    window = ReplayWindow(5.0)
    window.acked(1.0, 1, "t", "e0")
    window.reconnected(2)
    drain(window)
    window.acked(30.0, 2, "t", "e0")  # the replay, acknowledged by the restarted broker
    assert window.reconnected(3) == 1
    assert drain(window) == ["e0"]


def test_old_acknowledgements_are_trimmed_once_their_window_was_taken() -> None:
    window = ReplayWindow(5.0)
    for n in range(100):
        window.acked(float(n), 1, "t", f"e{n}")
    window.reconnected(2)
    drain(window)
    window.acked(200.0, 2, "t", "late")
    assert window.reconnected(3) == 1  # only "late": the rest of connection 1 is long done
    assert drain(window) == ["late"]


def test_the_newest_are_kept_within_the_bound() -> None:
    window = ReplayWindow(5.0, most=3)
    for n in range(10):
        window.acked(1.0, 1, "t", f"e{n}")
    assert window.reconnected(2) == 3
    assert drain(window) == ["e7", "e8", "e9"]


def test_zero_seconds_keeps_nothing() -> None:
    window = ReplayWindow(0.0)
    window.acked(1.0, 1, "t", "e0")
    assert window.reconnected(2) == 0
    assert window.next() is None
