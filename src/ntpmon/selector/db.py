"""The selector's database adapter: loads a server's inputs and executes a plan's writes.

All SQL lives in ``ntpmon.db.selector`` (Q27–Q35) and ``ntpmon.db.common`` (Q5); this module
only maps between those rows and the engine's data, and applies upstream's failure policy:
a failed status change is counted and the rest continue (§9.1); a failed violation write skips
that monitor's remaining writes (§9.2). Errors that end the transaction (deadlock, lost
connection) are re-raised, because nothing after them could be committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.db import selector as q
from ntpmon.db.common import update_server_score_status
from ntpmon.db.models import Server
from ntpmon.db.tx import is_retryable
from ntpmon.selector.constants import REVIEW_AFTER_CHANGE, REVIEW_AFTER_NO_CHANGE, REVIEW_BATCH
from ntpmon.selector.errors import ServerNotFoundError
from ntpmon.selector.plan import PHASE_CHANGE
from ntpmon.selector.types import (
    ClearViolation,
    MonitorRow,
    ServerInfo,
    ServerPlan,
    SetPauseReason,
    SetStatus,
    SetViolation,
    StatusChange,
    TouchLastCheck,
    Write,
)

log = logging.getLogger(__name__)


def _is_change(write: Write) -> bool:
    """A status change of rule processing (§9.1 policy), not a constraint-phase pause."""
    return isinstance(write, SetStatus) and write.phase == PHASE_CHANGE


def _write_values(write: Write, now: datetime) -> dict[str, object]:
    """The columns one write sets, exactly as its single-row query writes them."""
    if isinstance(write, SetStatus):
        return q.status_values(write.status)
    if isinstance(write, SetViolation):
        return q.violation_values(write.type, write.since)
    if isinstance(write, ClearViolation):
        return q.cleared_violation_values(now)
    if isinstance(write, SetPauseReason):
        return q.pause_reason_values(write.reason, now)
    if isinstance(write, TouchLastCheck):
        return q.last_check_values(now)
    raise TypeError(f"unknown write {write!r}")  # pragma: no cover - the Write union is closed


def _server_info(server: Server) -> ServerInfo:
    return ServerInfo(
        id=server.id, account_id=server.account_id, ip=server.ip, ip_version=server.ip_version
    )


@dataclass(frozen=True, slots=True)
class ServerInputs:
    """What a review of one server reads: the server and its Q31 rows."""

    server: ServerInfo
    rows: list[MonitorRow]


@dataclass
class ApplyResult:
    """What actually reached the database."""

    applied: list[StatusChange] = field(default_factory=list)
    failed: list[StatusChange] = field(default_factory=list)
    failed_writes: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.applied)


@dataclass
class SelectorStore:
    """The selector's view of one open connection (the caller owns the transaction)."""

    conn: Connection

    def due_servers(self, now: datetime, limit: int = REVIEW_BATCH) -> list[int]:
        return q.get_servers_monitor_review(self.conn, now=now, limit=limit)

    def load_server(self, server_id: int) -> ServerInfo:
        server = q.get_server(self.conn, id=server_id)
        if server is None:
            raise ServerNotFoundError(server_id)
        return _server_info(server)

    def load_inputs(self, server_ids: Sequence[int], now: datetime) -> dict[int, ServerInputs]:
        """Q30 and Q31 for a whole batch in two round trips instead of two per server.

        The same rows as ``load_server`` and ``load_monitor_rows`` one server at a time in
        the same transaction: a review only writes its own server's ``server_scores`` rows,
        which no other server's inputs read. A server that does not exist is left out (its
        review loads it alone and fails as before).
        """
        found = q.get_servers(self.conn, ids=server_ids)
        rows = q.get_monitor_priorities(self.conn, server_ids=list(found), now=now)
        return {sid: ServerInputs(_server_info(s), rows[sid]) for sid, s in found.items()}

    def load_monitor_rows(self, server_id: int, now: datetime) -> list[MonitorRow]:
        return q.get_monitor_priority(self.conn, server_id=server_id, now=now)

    def _execute(self, server_id: int, write: Write, now: datetime) -> None:
        conn, mid = self.conn, write.monitor_id
        if isinstance(write, SetStatus):
            update_server_score_status(
                conn, monitor_id=mid, server_id=server_id, status=write.status
            )
        elif isinstance(write, SetViolation):
            q.update_server_score_constraint_violation(
                conn, server_id=server_id, monitor_id=mid, type=write.type, since=write.since
            )
        elif isinstance(write, ClearViolation):
            q.clear_server_score_constraint_violation(
                conn, server_id=server_id, monitor_id=mid, now=now
            )
        elif isinstance(write, SetPauseReason):
            q.update_server_score_pause_reason(
                conn, server_id=server_id, monitor_id=mid, pause_reason=write.reason, now=now
            )
        elif isinstance(write, TouchLastCheck):
            q.update_server_score_last_constraint_check(
                conn, server_id=server_id, monitor_id=mid, now=now
            )
        else:  # pragma: no cover - the Write union is closed
            raise TypeError(f"unknown write {write!r}")

    def apply_plan(self, plan: ServerPlan, now: datetime) -> ApplyResult:
        """Run the plan's writes with upstream's per-statement failure policy.

        All writes of the server go first as one UPDATE (one round trip instead of about
        five). It is atomic, so if it fails nothing of it was written and the writes are
        replayed one statement at a time, in order, where the policy of §9 applies exactly.
        When every write succeeds the rows are the same either way.
        """
        if self._apply_at_once(plan, now):
            changes = sum(1 for w in plan.writes if _is_change(w))
            return ApplyResult(applied=list(plan.status_changes[:changes]))
        return self._apply_one_by_one(plan, now)

    def _apply_at_once(self, plan: ServerPlan, now: datetime) -> bool:
        values: dict[int, dict[str, object]] = {}
        for write in plan.writes:
            values.setdefault(write.monitor_id, {}).update(_write_values(write, now))
        try:
            q.update_assignments(self.conn, server_id=plan.server.id, values=values)
        except SQLAlchemyError as exc:
            if is_retryable(exc):
                raise
            log.info(
                "selector writes replayed one by one",
                extra={
                    "server": plan.server.id,
                    "error": str(getattr(exc, "orig", exc)).splitlines()[0],
                },
            )
            return False
        return True

    def _apply_one_by_one(self, plan: ServerPlan, now: datetime) -> ApplyResult:
        result = ApplyResult()
        server_id = plan.server.id
        changes = iter(plan.status_changes)
        skip_monitors: set[int] = set()
        for write in plan.writes:
            is_change = _is_change(write)
            change = next(changes) if is_change else None
            if not is_change and write.monitor_id in skip_monitors:
                continue
            try:
                self._execute(server_id, write, now)
            except SQLAlchemyError as exc:
                if is_retryable(exc):
                    raise
                log.error(
                    "selector write failed",
                    extra={
                        "server": server_id,
                        "monitor": write.monitor_id,
                        "write": type(write).__name__,
                        "error": str(getattr(exc, "orig", exc)).splitlines()[0],
                    },
                )
                result.failed_writes += 1
                if change is not None:
                    result.failed.append(change)
                elif not isinstance(write, TouchLastCheck):
                    skip_monitors.add(write.monitor_id)
                continue
            if change is not None:
                result.applied.append(change)
        return result

    def schedule_reviews(
        self, now: datetime, changed: Sequence[int], unchanged: Sequence[int]
    ) -> None:
        """Q29 (+60 min) for the servers with a change, Q28 (+20 min) for the others: one
        statement each for a whole batch (same rows as ``schedule_review`` per server)."""
        for server_ids, delay, was_changed in (
            (changed, REVIEW_AFTER_CHANGE, True),
            (unchanged, REVIEW_AFTER_NO_CHANGE, False),
        ):
            q.reschedule_servers_monitor_review(
                self.conn,
                server_ids=server_ids,
                now=now,
                next_review=now + delay,
                changed=was_changed,
            )

    def schedule_review(self, server_id: int, now: datetime, changed: bool) -> None:
        """Q29 (+60 min) after a change, else Q28 (+20 min)."""
        if changed:
            q.update_servers_monitor_review_changed(
                self.conn, server_id=server_id, now=now, next_review=now + REVIEW_AFTER_CHANGE
            )
        else:
            q.update_servers_monitor_review(
                self.conn, server_id=server_id, now=now, next_review=now + REVIEW_AFTER_NO_CHANGE
            )
