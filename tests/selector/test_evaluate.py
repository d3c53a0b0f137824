"""Rows → evaluated monitors (spec/selector.md §4, §6.6, §12 Q10, Q17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.selector import (
    CandidateState,
    MissingRttError,
    MonitorRow,
    ServerInfo,
    ViolationType,
    evaluate_monitors,
    row_to_candidate,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SERVER = ServerInfo(id=1, account_id=1, ip="192.0.2.10")


def test_null_priority_fails_the_server() -> None:
    rows = [MonitorRow(id=1, status="active"), MonitorRow(id=2, monitor_priority=None)]
    with pytest.raises(MissingRttError, match="monitor 2"):
        evaluate_monitors(rows, SERVER, NOW)


@pytest.mark.parametrize(
    ("healthy", "priority", "is_healthy"),
    [(True, 0, True), (True, 5, True), (True, -1, False), (False, 5, False)],
)
def test_health_from_row(healthy: bool, priority: int, is_healthy: bool) -> None:
    candidate = row_to_candidate(MonitorRow(id=1, healthy=healthy, monitor_priority=priority))
    assert candidate.is_healthy is is_healthy
    assert candidate.has_metrics is True


def test_null_status_is_candidate_and_null_rtt_is_zero() -> None:
    candidate = row_to_candidate(MonitorRow(id=1, status=None, avg_rtt=None))
    assert candidate.server_status == "candidate"
    assert candidate.rtt == 0.0


@pytest.mark.parametrize(
    ("monitor_ip", "server_ip", "status", "vtype"),
    [
        ("bad", "192.0.2.10", "candidate", ViolationType.NETWORK_SAME_SUBNET),
        ("192.0.2.20", "bad", "candidate", ViolationType.NETWORK_SAME_SUBNET),
        ("bad", "", "candidate", ViolationType.NETWORK_DIVERSITY),
        ("", "bad", "active", ViolationType.NONE),
        ("198.51.100.1", "", "active", ViolationType.NONE),
    ],
)
def test_unparsable_addresses(monitor_ip: str, server_ip: str, status: str, vtype) -> None:
    server = ServerInfo(id=1, ip=server_ip)
    (em,) = evaluate_monitors([MonitorRow(id=1, monitor_ip=monitor_ip, status=status)], server, NOW)
    assert em.violation is not None and em.violation.type == vtype


def test_violation_since_is_kept_only_for_the_same_type() -> None:
    earlier = NOW - timedelta(hours=30)
    rows = [
        MonitorRow(
            id=1,
            monitor_ip="192.0.2.99",
            status="candidate",
            constraint_violation_type="network_same_subnet",
            constraint_violation_since=earlier,
        ),
        MonitorRow(
            id=2,
            monitor_ip="192.0.2.98",
            status="candidate",
            constraint_violation_type="limit",
            constraint_violation_since=earlier,
        ),
    ]
    first, second = evaluate_monitors(rows, SERVER, NOW)
    assert first.violation is not None and first.violation.since == earlier
    assert second.violation is not None and second.violation.since == NOW
    assert first.state == second.state == CandidateState.OUT


def test_limit_flag_takes_precedence_over_other_checks() -> None:
    rows = [
        MonitorRow(id=i, account_id=5, status="active", monitor_ip="192.0.2.5", monitor_priority=i)
        for i in range(1, 4)
    ]
    evaluated = evaluate_monitors(rows, SERVER, NOW)
    types = [em.violation.type for em in evaluated if em.violation]
    assert types == [
        ViolationType.NETWORK_SAME_SUBNET,
        ViolationType.NETWORK_SAME_SUBNET,
        ViolationType.LIMIT,
    ]
