"""When monitor-api asks an agent for a traceroute (issue 17, item 1): pure rules.

A trace is worth its cost when this monitor's view of a server *changes* between "answers" and
"does not answer" (timeout, unreachable): that is when a path problem starts or ends, and a
trace taken then shows where. A clock problem (a big offset, a bad stratum, a kiss code) says
nothing about the path and is ignored. Traces are throttled per monitor and server: a change
marks a trace as due, and GetServers hands it out only when the last one is older than the
configured interval, so a flapping server costs at most one trace per interval.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

_UNREACHABLE_WORDS = ("unreachable", "no route to host", "connection refused")


class Health(enum.StrEnum):
    """The path-relevant health of one result."""

    GOOD = "good"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"


def health_of(*, no_response: bool, error: str, step: float) -> Health | None:
    """A result's health; None when it says nothing about the path (a clock problem)."""
    if no_response:
        return Health.TIMEOUT
    lowered = error.lower()
    if any(word in lowered for word in _UNREACHABLE_WORDS):
        return Health.UNREACHABLE
    if not error and step > 0:
        return Health.GOOD
    return None


def is_path_change(before: Health, after: Health) -> bool:
    """Good → timeout/unreachable, or back (timeout ↔ unreachable is not a new event)."""
    return before != after and Health.GOOD in (before, after)


@dataclass(frozen=True, slots=True)
class TraceState:
    """What is remembered per monitor and server (table ``traceroute_state``)."""

    health: Health
    health_ts: datetime
    trace_due: datetime | None = None
    last_trace: datetime | None = None


def next_state(state: TraceState | None, health: Health | None, now: datetime) -> TraceState | None:
    """The state after one result, or None when nothing changes (no write needed).

    The first result of an assignment only records its health: there is no change to explain.
    A trace already due stays due (with its first time) until GetServers hands it out.
    """
    if health is None:
        return None
    if state is None:
        return TraceState(health, now)
    if state.health == health:
        return None
    due = state.trace_due
    if due is None and is_path_change(state.health, health):
        due = now
    return replace(state, health=health, health_ts=now, trace_due=due)


def batch_states(
    states: Mapping[int, TraceState],
    healths: Mapping[int, list[Health | None]],
    now: datetime,
) -> dict[int, TraceState]:
    """The states that change after a batch: server id → new state (results in batch order)."""
    changed: dict[int, TraceState] = {}
    for server_id, results in healths.items():
        state: TraceState | None = states.get(server_id)
        for health in results:
            new = next_state(state, health, now)
            if new is not None:
                state = changed[server_id] = new
    return changed


def trace_wanted(
    trace_due: datetime | None, last_trace: datetime | None, now: datetime, interval: timedelta
) -> bool:
    """GetServers sets ``trace`` when one is due and the last is at least ``interval`` old."""
    if trace_due is None:
        return False
    return last_trace is None or last_trace <= now - interval
