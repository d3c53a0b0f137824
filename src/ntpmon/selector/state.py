"""Candidate state of one monitor (spec/selector.md §7): what the rules may do with it."""

from __future__ import annotations

from ntpmon.selector.types import (
    LIVE_GLOBAL,
    WORKING_SERVER,
    CandidateState,
    GlobalStatus,
    MonitorCandidate,
    ServerStatus,
    Violation,
    has_violation,
)

_NOT_WORKING_GLOBAL = frozenset({GlobalStatus.PENDING, GlobalStatus.DELETED, GlobalStatus.PAUSED})


def has_state_inconsistency(monitor: MonitorCandidate) -> bool:
    """A monitor that may not work anywhere but is active or testing for this server."""
    return monitor.global_status in _NOT_WORKING_GLOBAL and monitor.server_status in WORKING_SERVER


def determine_state(monitor: MonitorCandidate, violation: Violation | None) -> CandidateState:
    """The first matching step of §7 decides; the order matters."""
    if monitor.global_status == GlobalStatus.PENDING:
        return CandidateState.OUT
    if monitor.global_status in (GlobalStatus.PAUSED, GlobalStatus.DELETED):
        return CandidateState.BLOCK
    if monitor.global_status not in LIVE_GLOBAL:
        return CandidateState.BLOCK
    if has_state_inconsistency(monitor):  # unreachable after the steps above; kept (§7 step 4)
        return CandidateState.OUT
    if has_violation(violation):
        return CandidateState.OUT
    if monitor.has_metrics and not monitor.is_healthy:
        return CandidateState.OUT
    if (
        monitor.server_status == ServerStatus.TESTING
        and monitor.global_status != GlobalStatus.ACTIVE
    ):
        return CandidateState.PENDING
    return CandidateState.IN
