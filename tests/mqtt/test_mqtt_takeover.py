"""Session-takeover back-off state machine (agent.md §13.6 and §19.9, api.md §18.7 #32)."""

from __future__ import annotations

import threading
import time

import pytest

from ntpmon.mqttcm.takeover import (
    DEFAULT_DELAYS,
    DEFAULT_STABILITY_WINDOW,
    SESSION_TAKEN_OVER,
    TakeoverState,
    delay_for,
)


@pytest.mark.parametrize(
    ("takeovers", "delay"),
    [(0, 10.0), (1, 120.0), (2, 300.0), (3, 600.0), (4, 900.0), (5, 900.0), (40, 900.0)],
)
def test_reconnect_schedule(takeovers: int, delay: float) -> None:
    state = TakeoverState()
    for _ in range(takeovers):
        state.record_disconnect(SESSION_TAKEN_OVER)
    assert state.reconnect_delay() == delay
    assert delay_for(takeovers) == delay
    assert state.in_backoff() is (takeovers > 0)
    state.close()


@pytest.mark.parametrize("code", [0, 0x04, 0x8B, 0x89])
def test_other_disconnect_codes_do_not_count(code: int) -> None:
    state = TakeoverState()
    state.record_disconnect(code, "whatever")
    assert not state.in_backoff()
    assert state.reconnect_delay() == 10.0


def test_fresh_state_waits_return_at_once() -> None:
    state = TakeoverState()
    assert state.wait_recovered(timeout=None) is True


def test_connection_up_without_takeover_arms_nothing() -> None:
    state = TakeoverState(stability_window=0.01)
    state.mark_connection_up()
    time.sleep(0.03)
    assert state.takeover_count == 0


def test_stable_connection_ends_backoff_and_releases_waiter() -> None:
    state = TakeoverState(stability_window=0.02)
    state.record_disconnect(SESSION_TAKEN_OVER)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(state.wait_recovered(5)))
    waiter.start()
    started = time.monotonic()
    state.mark_connection_up()
    waiter.join(5)
    assert results == [True]
    assert time.monotonic() - started >= 0.015
    assert not state.in_backoff()
    assert state.reconnect_delay() == 10.0


def test_timeout_keeps_backoff() -> None:
    state = TakeoverState(stability_window=3600)
    state.record_disconnect(SESSION_TAKEN_OVER)
    assert state.wait_recovered(timeout=0.02) is False
    assert state.in_backoff()
    state.close()


def test_second_takeover_within_window_keeps_backoff() -> None:
    state = TakeoverState(stability_window=0.05)
    state.record_disconnect(SESSION_TAKEN_OVER)
    state.mark_connection_up()
    time.sleep(0.005)
    state.record_disconnect(SESSION_TAKEN_OVER)
    time.sleep(0.08)
    assert state.in_backoff()
    assert state.reconnect_delay() == 300.0


def test_other_disconnect_cancels_stability_timer() -> None:
    state = TakeoverState(stability_window=0.02)
    state.record_disconnect(SESSION_TAKEN_OVER)
    state.mark_connection_up()
    time.sleep(0.005)
    state.record_disconnect(0)
    assert state.reconnect_delay() == 120.0
    time.sleep(0.04)
    assert state.in_backoff()


def test_new_takeover_after_recovery_blocks_new_waiters() -> None:
    state = TakeoverState(stability_window=0.01)
    state.record_disconnect(SESSION_TAKEN_OVER)
    state.mark_connection_up()
    assert state.wait_recovered(5) is True
    state.record_disconnect(SESSION_TAKEN_OVER)
    assert state.in_backoff()
    assert state.wait_recovered(0.005) is False
    state.close()


def test_cancellation_ends_wait_but_not_backoff() -> None:
    state = TakeoverState(stability_window=3600)
    state.record_disconnect(SESSION_TAKEN_OVER)
    cancel = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(
        target=lambda: results.append(state.wait_recovered(None, cancelled=cancel.is_set))
    )
    waiter.start()
    cancel.set()
    state.wake()
    waiter.join(5)
    assert results == [False]
    assert state.in_backoff()
    state.close()


def test_stability_window_exceeds_longest_delay() -> None:
    assert DEFAULT_STABILITY_WINDOW == 1800.0
    assert DEFAULT_STABILITY_WINDOW > max(DEFAULT_DELAYS) == 900.0


@pytest.mark.parametrize("delays", [(), (0.0,), (10.0, -1.0)])
def test_non_positive_delays_refused(delays: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="spin"):
        TakeoverState(delays=delays)
