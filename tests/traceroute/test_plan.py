"""The trace decision rule (issue 17, item 1) as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.monitor_config import parse_schedule
from ntpmon.traceroute.plan import (
    Health,
    TraceState,
    batch_states,
    health_of,
    is_path_change,
    next_state,
    trace_wanted,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("no_response", "error", "step", "health"),
    [
        (True, "", -5, Health.TIMEOUT),
        (False, "read: connection refused", -4, Health.UNREACHABLE),
        (False, "write: network is unreachable", -4, Health.UNREACHABLE),
        (False, "read: no route to host", -4, Health.UNREACHABLE),
        (False, "", 1, Health.GOOD),
        (False, "", 0.5, Health.GOOD),
        (False, "", -2, None),  # a big offset: the clock, not the path
        (False, "RATE", -3.5, None),
        (False, "bad stratum 0", -2, None),
    ],
)
def test_health_of_a_result(no_response: bool, error: str, step: float, health: Health) -> None:
    assert health_of(no_response=no_response, error=error, step=step) is health


def test_path_changes_are_between_good_and_bad_only() -> None:
    assert is_path_change(Health.GOOD, Health.TIMEOUT)
    assert is_path_change(Health.UNREACHABLE, Health.GOOD)
    assert not is_path_change(Health.TIMEOUT, Health.UNREACHABLE)
    assert not is_path_change(Health.GOOD, Health.GOOD)


def test_first_view_records_without_asking() -> None:
    assert next_state(None, Health.TIMEOUT, T0) == TraceState(Health.TIMEOUT, T0)
    assert next_state(None, None, T0) is None


def test_a_change_makes_a_trace_due_and_it_stays_due() -> None:
    good = TraceState(Health.GOOD, T0)
    bad = next_state(good, Health.TIMEOUT, T0 + HOUR)
    assert bad == TraceState(Health.TIMEOUT, T0 + HOUR, trace_due=T0 + HOUR)
    assert next_state(bad, Health.TIMEOUT, T0 + 2 * HOUR) is None  # no change, no write
    assert next_state(bad, None, T0 + 2 * HOUR) is None  # a clock problem changes nothing
    again = next_state(bad, Health.GOOD, T0 + 2 * HOUR)
    assert again is not None
    assert again.trace_due == T0 + HOUR  # the first due time is kept
    unreachable = next_state(again, Health.UNREACHABLE, T0 + 3 * HOUR)
    assert unreachable is not None
    assert unreachable.health is Health.UNREACHABLE


def test_batch_applies_results_in_order_and_returns_only_changes() -> None:
    states = {1: TraceState(Health.GOOD, T0), 2: TraceState(Health.GOOD, T0)}
    healths = {1: [Health.TIMEOUT, Health.GOOD], 2: [Health.GOOD, None], 3: [None, Health.GOOD]}
    changed = batch_states(states, healths, T0 + HOUR)
    assert set(changed) == {1, 3}
    assert changed[1] == TraceState(Health.GOOD, T0 + HOUR, trace_due=T0 + HOUR)
    assert changed[3] == TraceState(Health.GOOD, T0 + HOUR)


def test_trace_wanted_throttles_per_interval() -> None:
    assert not trace_wanted(None, None, T0, HOUR)
    assert trace_wanted(T0, None, T0, HOUR)
    assert not trace_wanted(T0, T0 - HOUR / 2, T0, HOUR)
    assert trace_wanted(T0, T0 - HOUR, T0, HOUR)


def test_interval_setting() -> None:
    assert parse_schedule(None).traceroute_interval == 3600
    assert parse_schedule('{"traceroute_interval": "15m"}').traceroute_interval == 900
    assert parse_schedule('{"traceroute_interval": "10s"}').traceroute_interval == 3600
    assert parse_schedule('{"traceroute_interval": "soon"}').traceroute_interval == 3600
