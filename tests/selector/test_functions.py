"""spec/selector.md §14.2: the function-level tables, one parametrised test per table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.selector import (
    AccountLimit,
    CandidateState,
    ChangeLimits,
    EvaluatedMonitor,
    GlobalStatus,
    MonitorCandidate,
    MonitorRow,
    SelectionContext,
    ServerInfo,
    ServerStatus,
    StatusChange,
    Violation,
    ViolationType,
    attempt_promotion,
    build_account_limits,
    calculate_change_limits,
    can_promote_to_testing,
    check_account_constraints,
    check_account_constraints_iterative,
    check_constraint_resolution,
    check_constraints,
    check_network_diversity,
    check_same_subnet,
    determine_state,
    emergency_reason,
    has_state_inconsistency,
    is_unchangeable,
    outperforms,
    parse_monitors_per_server_limit,
    should_check_constraint_resolution,
    split_bootstrap_candidates,
)
from ntpmon.selector.network import parse_ip

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
V = "violation"
OK = None


@pytest.mark.parametrize(
    ("monitor_ip", "server_ip", "expected"),
    [
        ("192.168.1.10", "192.168.1.20", V),
        ("192.168.1.10", "192.168.2.20", OK),
        ("2001:db8:1234::1", "2001:db8:1234::2", V),
        ("2001:db8:1234::1", "2001:db8:5678::2", OK),
        ("2001:db8:1234:ffff::1", "2001:db8:1234::9", V),
        ("2001:db8:1235::1", "2001:db8:1234::9", OK),
        ("192.168.1.10", "2001:db8:1234::1", OK),
        ("", "192.168.1.20", OK),
        ("192.168.1.10", "", OK),
        ("not-an-ip", "192.168.1.20", V),
        ("192.168.1.10", "not-an-ip", V),
        ("192.168.1.10", "192.168.1.10", V),
        ("010.0.0.1", "10.0.0.2", V),
        ("192.0.2.1", " 192.0.2.5", V),
        ("::ffff:192.0.2.1", "192.0.2.5", OK),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.5", V),
    ],
)
def test_check_same_subnet(monitor_ip: str, server_ip: str, expected: str | None) -> None:
    result = check_same_subnet(monitor_ip, server_ip)
    assert (result is not None) == (expected == V)
    if result is not None:
        assert result  # a non-empty detail


def _rows(text: str) -> list[MonitorRow]:
    """``2 10.0.0.1 A; 3 ...`` → rows with id, ip and status."""
    status = {"A": "active", "T": "testing"}
    rows = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        mid, ip, st = part.split()
        rows.append(MonitorRow(id=int(mid), monitor_ip=ip, status=status[st]))
    return rows


@pytest.mark.parametrize(
    ("monitor_id", "monitor_ip", "existing", "target", "expected"),
    [
        (1, "192.168.1.10", "", "active", OK),
        (1, "192.168.1.10", "2 10.0.0.1 A", "active", OK),
        (1, "192.168.1.10", "2 192.168.2.20 A; 3 192.168.3.30 A", "active", V),
        (1, "2001:db8:1234::1", "2 2001:db8:5678::1 A", "active", OK),
        (100, "192.168.1.10", "100 192.168.1.10 A; 101 10.0.0.1 A", "active", OK),
        (1, "10.0.0.1", "2 10.0.15.255 T", "active", V),
        (1, "10.0.0.1", "2 10.0.15.255 T", "testing", V),
        (1, "10.0.0.1", "2 10.0.15.255 T", "candidate", OK),
        (1, "10.0.0.1", "2 10.0.15.255 T", "paused", OK),
        (1, "10.0.16.1", "2 10.0.15.255 T", "active", OK),
        (1, "bad", "2 10.0.15.255 T", "active", V),
        (1, "bad", "2 10.0.15.255 T", "testing", V),
        (1, "bad", "2 10.0.15.255 T", "candidate", V),
        (1, "bad", "2 10.0.15.255 T", "paused", V),
    ],
)
def test_check_network_diversity(
    monitor_id: int, monitor_ip: str, existing: str, target: str, expected: str | None
) -> None:
    result = check_network_diversity(monitor_id, monitor_ip, _rows(existing), target)
    assert (result is not None) == (expected == V)


def _monitor(**kw: object) -> MonitorCandidate:
    base: dict[str, object] = {
        "id": 1,
        "global_status": GlobalStatus.ACTIVE,
        "server_status": ServerStatus.CANDIDATE,
        "account_id": 1,
        "is_healthy": True,
        "has_metrics": True,
    }
    base.update(kw)
    return MonitorCandidate(**base)  # type: ignore[arg-type]


E = MonitorRow(id=2, account_id=2, monitor_ip="192.168.1.20", status="testing")
E_SAME_ACCOUNT = MonitorRow(id=2, account_id=1, monitor_ip="10.0.0.2", status="testing")


@pytest.mark.parametrize(
    ("monitor_ip", "global_status", "server", "limit", "existing", "emergency", "expected"),
    [
        ("10.0.0.1", "active", (2, "192.168.1.1"), (2, 0, 3), [], True, True),
        ("192.168.1.10", "active", (2, "10.0.0.1"), (5, 0, 0), [E], True, True),
        ("10.0.0.1", "active", (2, "192.168.1.1"), (5, 0, 0), [E_SAME_ACCOUNT], True, True),
        ("10.0.0.1", "pending", (2, "192.168.1.1"), (5, 0, 0), [], True, False),
        ("10.0.0.1", "active", (2, "192.168.1.1"), (2, 0, 3), [], False, False),
        ("10.0.0.1", "active", (2, "192.168.1.1"), (5, 0, 0), [], False, True),
    ],
)
def test_can_promote_to_testing(
    monitor_ip: str,
    global_status: str,
    server: tuple[int, str],
    limit: tuple[int, int, int],
    existing: list[MonitorRow],
    emergency: bool,
    expected: bool,
) -> None:
    monitor = _monitor(ip=monitor_ip, global_status=global_status)
    srv = ServerInfo(id=9, account_id=server[0], ip=server[1])
    limits = {1: AccountLimit(1, *limit)}
    assert can_promote_to_testing(monitor, srv, limits, existing, emergency) is expected


@pytest.mark.parametrize(
    ("server_status", "target", "active", "testing", "ok"),
    [
        ("candidate", "testing", 2, 1, True),
        ("candidate", "testing", 2, 2, False),
        ("candidate", "testing", 1, 2, True),
        ("candidate", "testing", 0, 3, False),
        ("testing", "active", 1, 3, True),
        ("testing", "active", 2, 1, False),
        ("testing", "active", 1, 2, True),
        ("testing", "active", 0, 4, True),
    ],
)
def test_check_account_constraints(
    server_status: str, target: str, active: int, testing: int, ok: bool
) -> None:
    monitor = _monitor(account_id=5, server_status=server_status)
    server = ServerInfo(id=9)
    limits = {5: AccountLimit(5, 2, active, testing)}
    assert (check_account_constraints(monitor, server, limits, target) is None) is ok


def test_check_constraints_account_missing_from_map() -> None:
    monitor = _monitor(account_id=5)
    result = check_constraints(monitor, ServerInfo(id=9), {}, "testing", [])
    assert result.type == ViolationType.ACCOUNT


def test_check_constraints_same_account_is_limit_when_account_known() -> None:
    monitor = _monitor(account_id=5)
    limits = {5: AccountLimit(5, 2)}
    result = check_constraints(monitor, ServerInfo(id=9, account_id=5), limits, "testing", [])
    assert result.type == ViolationType.LIMIT


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ('{"monitors_per_server_limit":3}', 3),
        ('{"MONITORS_PER_SERVER_LIMIT":3}', 3),
        ('{"monitors_per_server_limit":1}', 1),
        ('{"monitors_per_server_limit":0}', 2),
        ('{"monitors_per_server_limit":3,"monitor_enabled":"yes"}', 2),
        ('{"monitors_per_server_limit":3,"monitor_limit":2.5}', 2),
        ('{"monitors_per_server_limit":3.0}', 2),
        ('{"monitors_per_server_limit":1e1}', 2),
        ('{"monitors_per_server_limit":"3"}', 2),
        ('{"monitors_per_server_limit":-1}', 2),
        ('{"monitors_per_server_limit":null}', 2),
        ('{"monitors_per_server_limit":99999999999999999999}', 2),
        ('{"unknown":[1,{"a":2}],"monitors_per_server_limit":4}', 4),
        ('{"monitors_per_server_limit":3,"Monitors_Per_Server_Limit":5}', 5),
        ('{"monitors_per_server_limit":3,"monitor_enabled":true,"monitor_limit":9}', 3),
        ('[["monitors_per_server_limit",3]]', 2),
        ("null", 2),
        ("[]", 2),
        ("not json", 2),
        (None, 2),
    ],
)
def test_monitors_per_server_limit(flags: str | None, expected: int) -> None:
    assert parse_monitors_per_server_limit(flags) == expected
    row = MonitorRow(id=1, account_id=7, status="active", account_flags=flags)
    assert build_account_limits([row])[7] == AccountLimit(7, expected, 1, 0)


def test_build_account_limits_counts_only_active_and_testing() -> None:
    rows = [
        MonitorRow(id=1, account_id=7, status="active"),
        MonitorRow(id=2, account_id=7, status="testing"),
        MonitorRow(id=3, account_id=7, status="candidate"),
        MonitorRow(id=4, account_id=7, status="paused"),
        MonitorRow(id=5, account_id=7, status=None),
        MonitorRow(id=6, account_id=None, status="active"),
        MonitorRow(id=7, account_id=8, status="candidate"),
    ]
    assert build_account_limits(rows) == {7: AccountLimit(7, 2, 1, 1), 8: AccountLimit(8, 2)}


X2 = json.dumps({"monitors_per_server_limit": 2})
X1 = json.dumps({"monitors_per_server_limit": 1})
S = {"A": "active", "T": "testing", "C": "candidate", "-": None}


def _acct_rows(text: str, flags: str | None = X2) -> list[MonitorRow]:
    """``id/account/status/priority`` items separated by commas."""
    rows = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        mid, account, status, prio = part.split("/")
        rows.append(
            MonitorRow(
                id=int(mid),
                account_id=int(account) if account != "-" else None,
                status=S[status],
                monitor_priority=int(prio),
                account_flags=flags,
            )
        )
    return rows


@pytest.mark.parametrize(
    ("rows", "flags", "flagged"),
    [
        ("1/100/A/10, 2/100/A/20, 3/100/T/30", X2, set()),
        ("1/100/A/10, 2/100/A/20, 3/100/A/30", X2, {3}),
        ("1/100/T/10, 2/100/T/20, 3/100/T/30, 4/100/T/40", X2, {4}),
        ("1/100/A/10, 2/100/A/20, 3/100/A/30, 4/100/C/40, 5/100/C/50", X2, {3}),
        ("1/100/A/10, 2/100/A/20, 3/100/A/30, 4/200/A/15, 5/200/A/25", X2, {3}),
        ("", X2, set()),
        ("1/-/A/10", X2, set()),
        ("1/100/-/10", X2, set()),
        ("1/100/A/10, 2/100/A/20, 3/100/A/30", None, {3}),
        ("1/100/A/50, 2/100/A/50, 3/100/A/50", X1, {1, 2}),
        ("1/100/A/10, 2/100/A/10, 3/100/A/20", X1, {2, 3}),
    ],
)
def test_check_account_constraints_iterative(rows: str, flags: str | None, flagged: set) -> None:
    result = check_account_constraints_iterative(_acct_rows(rows, flags), ServerInfo(id=1), NOW)
    assert set(result) == flagged
    for violation in result.values():
        assert violation.type == ViolationType.LIMIT
        assert violation.details
        assert violation.since == NOW


def test_iterative_keeps_stored_limit_since() -> None:
    rows = _acct_rows("1/100/A/10, 2/100/A/20, 3/100/A/30")
    earlier = NOW - timedelta(hours=30)
    rows[2].constraint_violation_type = "limit"
    rows[2].constraint_violation_since = earlier
    assert check_account_constraints_iterative(rows, None, NOW)[3].since == earlier


@pytest.mark.parametrize(
    ("vtype", "expected"),
    [
        (ViolationType.NETWORK_SAME_SUBNET, True),
        (ViolationType.ACCOUNT, True),
        (ViolationType.LIMIT, False),
        (ViolationType.NETWORK_DIVERSITY, False),
        (ViolationType.NONE, False),
    ],
)
def test_is_unchangeable(vtype: ViolationType, expected: bool) -> None:
    assert is_unchangeable(vtype) is expected


@pytest.mark.parametrize(
    ("server_status", "reason", "checked_hours_ago", "expected"),
    [
        ("active", "constraint", None, False),
        ("paused", "constraint", None, True),
        ("paused", "constraint", 4, False),
        ("paused", "constraint", 10, True),
        ("paused", "excess", 100, False),
        ("paused", "excess", 121, True),
        ("paused", "manual", 1000, False),
    ],
)
def test_should_check_constraint_resolution(
    server_status: str, reason: str, checked_hours_ago: int | None, expected: bool
) -> None:
    checked = None if checked_hours_ago is None else NOW - timedelta(hours=checked_hours_ago)
    monitor = _monitor(server_status=server_status, last_constraint_check=checked)
    assert should_check_constraint_resolution(monitor, reason, NOW) is expected


@pytest.mark.parametrize(
    ("server_status", "stored", "monitor_ip", "server_ip", "expected"),
    [
        ("active", "network_same_subnet", "192.168.1.10", "192.168.2.1", False),
        ("paused", None, "192.168.1.10", "192.168.1.20", True),
        ("paused", "limit", "192.168.1.10", "192.168.1.20", True),
        ("paused", "network_same_subnet", "192.168.1.10", "192.168.2.1", True),
        ("paused", "network_same_subnet", "192.168.1.10", "192.168.1.20", False),
    ],
)
def test_check_constraint_resolution(
    server_status: str, stored: str | None, monitor_ip: str, server_ip: str, expected: bool
) -> None:
    monitor = _monitor(server_status=server_status, constraint_violation_type=stored, ip=monitor_ip)
    assert check_constraint_resolution(monitor, ServerInfo(id=1, ip=server_ip)) is expected


def test_check_constraint_resolution_account() -> None:
    monitor = _monitor(server_status="paused", constraint_violation_type="account", account_id=3)
    assert check_constraint_resolution(monitor, ServerInfo(id=1, account_id=3)) is False
    assert check_constraint_resolution(monitor, ServerInfo(id=1, account_id=4)) is True


SUBNET = Violation(ViolationType.NETWORK_SAME_SUBNET, NOW, "x")


@pytest.mark.parametrize(
    ("global_status", "server_status", "healthy", "metrics", "violation", "expected"),
    [
        ("pending", "candidate", True, True, None, CandidateState.OUT),
        ("paused", "active", True, True, None, CandidateState.BLOCK),
        ("deleted", "testing", True, True, None, CandidateState.BLOCK),
        ("active", "active", True, True, None, CandidateState.IN),
        ("active", "candidate", True, True, SUBNET, CandidateState.OUT),
        ("active", "active", False, True, None, CandidateState.OUT),
        ("retired", "active", True, True, None, CandidateState.BLOCK),
        ("testing", "testing", True, True, None, CandidateState.PENDING),
        ("testing", "active", True, True, None, CandidateState.IN),
        ("active", "active", False, False, None, CandidateState.IN),
    ],
)
def test_determine_state(
    global_status: str,
    server_status: str,
    healthy: bool,
    metrics: bool,
    violation: Violation | None,
    expected: CandidateState,
) -> None:
    monitor = _monitor(
        global_status=global_status,
        server_status=server_status,
        is_healthy=healthy,
        has_metrics=metrics,
    )
    assert determine_state(monitor, violation) == expected


@pytest.mark.parametrize(
    ("global_status", "server_status", "expected"),
    [
        ("pending", "active", True),
        ("pending", "testing", True),
        ("deleted", "active", True),
        ("active", "active", False),
        ("testing", "testing", False),
    ],
)
def test_has_state_inconsistency(global_status: str, server_status: str, expected: bool) -> None:
    monitor = _monitor(global_status=global_status, server_status=server_status)
    assert has_state_inconsistency(monitor) is expected


@pytest.mark.parametrize(
    ("better", "worse", "better_healthy", "worse_healthy", "expected"),
    [
        (50, 100, True, True, True),
        (96, 100, True, True, False),
        (50, 50, True, True, False),
        (100, 50, True, True, False),
        (50, 100, False, True, False),
        (95, 100, True, True, True),
        (19, 20, True, True, False),
        (0, 5, True, True, True),
        (0, 4, True, True, False),
        (-5, 0, True, True, True),
        (-4, 0, True, True, False),
        (1, 0, True, True, False),
        (100, 105, True, True, False),
        (190, 200, True, True, True),
        (191, 200, True, True, False),
        (-20, -10, True, True, False),
        (1, 6, True, True, True),
        (2, 6, True, True, False),
        (500, 10, True, False, True),
    ],
)
def test_outperforms(
    better: int, worse: int, better_healthy: bool, worse_healthy: bool, expected: bool
) -> None:
    b = _monitor(priority=better, is_healthy=better_healthy)
    w = _monitor(id=2, priority=worse, is_healthy=worse_healthy)
    assert outperforms(b, w) is expected
    wrapped = EvaluatedMonitor(b, None, CandidateState.IN)
    assert outperforms(wrapped, EvaluatedMonitor(w, None, CandidateState.IN)) is expected


@pytest.mark.parametrize(
    ("base", "to_status", "bootstrap", "expected"),
    [
        ("promotion to active", "active", False, "emergency promotion: zero active monitors"),
        (
            "candidate to testing",
            "testing",
            False,
            "emergency promotion to testing: zero active monitors",
        ),
        ("any", "active", True, "bootstrap emergency promotion: zero active monitors"),
        ("any", "testing", True, "bootstrap emergency promotion to testing: zero active monitors"),
        ("some reason", "candidate", False, "some reason"),
    ],
)
def test_emergency_reason(base: str, to_status: str, bootstrap: bool, expected: str) -> None:
    assert emergency_reason(base, to_status, bootstrap) == expected


def test_split_bootstrap_candidates() -> None:
    specs = [(1, "active", True), (2, "active", False), (3, "testing", True)]
    specs += [(4, "testing", False), (5, "paused", True)]
    monitors = [
        EvaluatedMonitor(_monitor(id=i, global_status=g, is_healthy=h), None, CandidateState.IN)
        for i, g, h in specs
    ]
    healthy, other = split_bootstrap_candidates(monitors)
    assert [em.monitor.id for em in healthy] == [1, 3]
    assert [em.monitor.id for em in other] == [2, 4]


def _ctx(emergency: bool) -> SelectionContext:
    return SelectionContext(
        server=ServerInfo(id=1, account_id=200),
        account_limits={},
        assigned=[],
        limits=ChangeLimits(2, 2, 2),
        emergency=emergency,
    )


@pytest.mark.parametrize(
    ("from_status", "to_status", "start", "after", "emergency", "reason"),
    [
        ("candidate", "testing", (0, 0), (0, 1), False, "candidate to testing"),
        ("testing", "active", (0, 1), (1, 0), False, "promotion to active"),
        (
            "candidate",
            "testing",
            (0, 0),
            (0, 1),
            True,
            "emergency promotion to testing: zero active monitors",
        ),
        (
            "testing",
            "active",
            (0, 1),
            (1, 0),
            True,
            "emergency promotion: zero active monitors",
        ),
    ],
)
def test_attempt_promotion(
    from_status: str,
    to_status: str,
    start: tuple[int, int],
    after: tuple[int, int],
    emergency: bool,
    reason: str,
) -> None:
    monitor = _monitor(account_id=100, server_status=from_status)
    em = EvaluatedMonitor(monitor, None, CandidateState.IN)
    limits = {100: AccountLimit(100, 2, *start)}
    base = "candidate to testing" if to_status == "testing" else "promotion to active"
    change = attempt_promotion(
        _ctx(emergency),
        em,
        ServerStatus(from_status),
        ServerStatus(to_status),
        base,
        limits,
    )
    assert change == StatusChange(1, ServerStatus(from_status), ServerStatus(to_status), reason)
    assert (limits[100].active_count, limits[100].testing_count) == after


@pytest.mark.parametrize(
    ("active", "blocked", "budget"),
    [(5, 0, 2), (5, 1, 2), (5, 2, 3), (0, 0, 4), (0, 5, 4)],
)
def test_calculate_change_limits(active: int, blocked: int, budget: int) -> None:
    assert calculate_change_limits(active, blocked) == ChangeLimits(budget, budget, budget)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", (4, 0xC0000201)),
        ("0.0.0.0", (4, 0)),
        ("010.0.0.1", None),
        ("1.2.3.04", None),
        (" 192.0.2.1", None),
        ("192.0.2.1 ", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("１.2.3.4", None),
        ("1.2.3.4\x00", None),
        ("::ffff:192.0.2.1", (6, 0xFFFF_C000_0201)),
        ("2001:db8::1", (6, 0x2001_0DB8 << 96 | 1)),
        ("2001:db8::g", None),
        ("", None),
    ],
)
def test_parse_ip_is_strict(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_ip(text) == expected
