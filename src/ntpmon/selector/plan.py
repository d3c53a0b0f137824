"""One server's review as data (spec/selector.md §1.1 steps 3–9, §9): rows in, the ordered
status changes and every database write out. The adapter only executes the writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ntpmon.selector.constraints import (
    NetworkIndex,
    build_account_limits,
    is_unchangeable,
    should_check_constraint_resolution,
    stored_pause_reason,
)
from ntpmon.selector.evaluate import evaluate_monitors
from ntpmon.selector.rules import select_changes
from ntpmon.selector.types import (
    ClearViolation,
    EvaluatedMonitor,
    MonitorRow,
    PauseReason,
    ServerInfo,
    ServerPlan,
    ServerStatus,
    SetPauseReason,
    SetStatus,
    SetViolation,
    TouchLastCheck,
    ViolationType,
    Write,
    has_violation,
)

PHASE_CHANGE = "change"
PHASE_CONSTRAINT = "constraint"


def violation_writes(em: EvaluatedMonitor, now: datetime) -> list[Write]:
    """Record, re-assert or clear one monitor's violation; pause unchangeable ones (§9.2).

    Uses the status as loaded, before this run's changes (quirk Q14).
    """
    monitor, violation = em.monitor, em.violation
    stored_type = monitor.constraint_violation_type
    if violation is None or not has_violation(violation):
        return [ClearViolation(monitor.id)] if stored_type else []
    loaded = monitor.server_status
    if loaded == ServerStatus.CANDIDATE and violation.type == ViolationType.LIMIT:
        return []
    pause = is_unchangeable(violation.type) and loaded != ServerStatus.PAUSED
    writes: list[Write] = []
    stored_since = monitor.constraint_violation_since
    if stored_type is None or stored_type != violation.type or stored_since is None:
        writes.append(SetViolation(monitor.id, violation.type, now))
    elif pause:
        writes.append(SetViolation(monitor.id, violation.type, stored_since))
    if pause:
        writes.append(SetStatus(monitor.id, ServerStatus.PAUSED, phase=PHASE_CONSTRAINT))
        writes.append(SetPauseReason(monitor.id, PauseReason.CONSTRAINT))
    return writes


def plan_server(server: ServerInfo, rows: Sequence[MonitorRow], now: datetime) -> ServerPlan:
    """Evaluate, select and turn the result into the writes of §9, in their order."""
    index = NetworkIndex(rows)
    evaluated = evaluate_monitors(rows, server, now, index=index)
    limits = build_account_limits(rows)
    changes = select_changes(evaluated, server, limits, index, now)
    writes: list[Write] = [SetStatus(c.monitor_id, c.to_status) for c in changes]
    for em in evaluated:
        writes += violation_writes(em, now)
    for em in evaluated:
        reason = stored_pause_reason(em.monitor)
        if should_check_constraint_resolution(em.monitor, reason, now):
            writes.append(TouchLastCheck(em.monitor.id))
    return ServerPlan(server, evaluated, changes, writes)
