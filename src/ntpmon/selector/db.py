"""The selector's database adapter: loads a server's inputs and executes a plan's writes.

All SQL lives in ``ntpmon.db.selector`` (Q27–Q35) and ``ntpmon.db.common`` (Q5); this module
only maps between those rows and the engine's data, and applies upstream's failure policy:
a failed status change is counted and the rest continue (§9.1); a failed violation write skips
that monitor's remaining writes (§9.2). Errors that end the transaction (deadlock, lost
connection) are re-raised, because nothing after them could be committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.db import selector as q
from ntpmon.db.common import update_server_score_status
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
        return ServerInfo(
            id=server.id, account_id=server.account_id, ip=server.ip, ip_version=server.ip_version
        )

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
        """Run the plan's writes in order with upstream's per-statement failure policy."""
        result = ApplyResult()
        server_id = plan.server.id
        changes = iter(plan.status_changes)
        skip_monitors: set[int] = set()
        for write in plan.writes:
            is_change = isinstance(write, SetStatus) and write.phase == PHASE_CHANGE
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
