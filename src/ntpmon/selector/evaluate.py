"""Rows → evaluated monitors (spec/selector.md §4, §6.6, §7): current-state constraints and
the candidate state of each monitor, before any rule runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ntpmon.selector.constraints import (
    NetworkIndex,
    check_account_constraints_iterative,
    check_network_diversity,
    check_same_subnet,
    same_account,
)
from ntpmon.selector.errors import MissingRttError
from ntpmon.selector.state import determine_state
from ntpmon.selector.types import (
    NO_VIOLATION,
    EvaluatedMonitor,
    MonitorCandidate,
    MonitorRow,
    ServerInfo,
    ServerStatus,
    Violation,
    ViolationType,
)


def row_to_candidate(row: MonitorRow) -> MonitorCandidate:
    """The rules' view of one row; a NULL priority is a per-server error (§12 Q17)."""
    if row.monitor_priority is None:
        raise MissingRttError(row.id)
    priority = int(row.monitor_priority)
    return MonitorCandidate(
        id=row.id,
        global_status=row.monitor_status,
        server_status=row.status or ServerStatus.CANDIDATE,
        account_id=row.account_id,
        ip=row.monitor_ip or "",
        has_metrics=True,
        is_healthy=bool(row.healthy) and priority >= 0,
        rtt=float(row.avg_rtt) if row.avg_rtt is not None else 0.0,
        priority=priority,
        count=row.count,
        id_token=row.id_token or "",
        tls_name=row.tls_name or "",
        constraint_violation_type=row.constraint_violation_type,
        constraint_violation_since=row.constraint_violation_since,
        last_constraint_check=row.last_constraint_check,
        pause_reason=row.pause_reason,
    )


def _current_violation(
    monitor: MonitorCandidate, server: ServerInfo, index: NetworkIndex
) -> tuple[ViolationType, str]:
    detail = check_same_subnet(monitor.ip, server.ip, cache=index.cache)
    if detail is not None:
        return ViolationType.NETWORK_SAME_SUBNET, detail
    if same_account(monitor, server):
        return ViolationType.ACCOUNT, f"monitor and server share account {monitor.account_id}"
    detail = check_network_diversity(monitor.id, monitor.ip, index, monitor.server_status)
    if detail is not None:
        return ViolationType.NETWORK_DIVERSITY, detail
    return ViolationType.NONE, ""


def evaluate_monitors(
    rows: Sequence[MonitorRow],
    server: ServerInfo,
    now: datetime,
    *,
    index: NetworkIndex | None = None,
) -> list[EvaluatedMonitor]:
    """Violation and state of every row, in list order (§6.6 precedence, §7)."""
    candidates = [row_to_candidate(row) for row in rows]
    index = index or NetworkIndex(rows)
    limit_flags = check_account_constraints_iterative(rows, server, now)
    evaluated: list[EvaluatedMonitor] = []
    for monitor in candidates:
        violation = limit_flags.get(monitor.id)
        if violation is None:
            vtype, detail = _current_violation(monitor, server, index)
            if vtype == ViolationType.NONE:
                violation = NO_VIOLATION
            else:
                keep = (
                    monitor.constraint_violation_type == vtype
                    and monitor.constraint_violation_since is not None
                )
                since = monitor.constraint_violation_since if keep else now
                violation = Violation(vtype, since, detail)
        evaluated.append(EvaluatedMonitor(monitor, violation, determine_state(monitor, violation)))
    return evaluated
