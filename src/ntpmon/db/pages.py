"""Read-only queries behind the status pages (servers, one server's history, monitors).

Every query is Core and portable to MySQL/MariaDB and SQLite; the history window's cut-off is
passed in by the caller (computed from the injectable clock), never taken from ``NOW()``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select

from ntpmon.common.clock import db_seconds
from ntpmon.db.models import MonitorType
from ntpmon.db.tables import accounts, log_scores, monitors, server_scores, servers

DATABASE_HISTORY = timedelta(days=14)
"""How far back the pages read ``log_scores`` from the database, and so retention's default
age: the longest page window without ClickHouse (older history is read from ClickHouse)."""

HISTORY_ROW_LIMIT = 20_000
"""The newest rows a server page draws; enough for days of one-per-minute checks."""


# The order assignments are listed in: working roles first.
STATUS_RANK = {"active": 0, "testing": 1, "candidate": 2, "paused": 3}
# What both assignment lists show of a monitor's role for a server (server_scores).
_ROLE_COLUMNS = (
    server_scores.c.status,
    server_scores.c.score_raw,
    server_scores.c.score_ts,
    server_scores.c.constraint_violation_type,
    server_scores.c.pause_reason,
)


@dataclasses.dataclass(frozen=True, slots=True)
class ServerOverview:
    """One line of the servers list."""

    id: int
    ip: str
    ip_version: str
    hostname: str | None
    score_raw: float
    score_ts: datetime | None
    deletion_on: date | None
    monitor_counts: dict[str, int]
    """Assigned monitors by per-server status (candidate, testing, active, paused)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    """A monitor's standing for one server (a ``server_scores`` row with the monitor's name)."""

    monitor_id: int
    tls_name: str | None
    monitor_type: str
    monitor_status: str
    status: str
    score_raw: float
    score_ts: datetime | None
    constraint_violation_type: str | None
    pause_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerAssignment:
    """One server a monitor is assigned to (a ``server_scores`` row with the server's names)."""

    server_id: int
    ip: str
    hostname: str | None
    status: str
    score_raw: float
    score_ts: datetime | None
    constraint_violation_type: str | None
    pause_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One ``log_scores`` row of a server, tagged with who wrote it."""

    monitor_id: int | None
    monitor_type: str | None
    ts: datetime
    score: float
    step: float
    offset: float | None
    rtt: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class MonitorOverview:
    """One line of the monitors list."""

    id: int
    tls_name: str | None
    hostname: str
    ip: str | None
    ip_version: str | None
    status: str
    client_version: str
    last_seen: datetime | None
    last_submit: datetime | None
    account_id: int | None
    account_name: str | None
    server_counts: dict[str, int]
    """Servers this monitor is assigned to, by per-server status."""


def _counts(
    conn: Connection, key_column: ColumnElement[Any], where: ColumnElement[bool]
) -> dict[int, dict[str, int]]:
    """``server_scores`` rows grouped by ``key_column`` and status, as nested dicts."""
    rows = conn.execute(
        select(key_column, server_scores.c.status, func.count())
        .select_from(server_scores.join(monitors, monitors.c.id == server_scores.c.monitor_id))
        .where(where)
        .group_by(key_column, server_scores.c.status)
    )
    out: dict[int, Counter[str]] = {}
    for key, status, count in rows:
        out.setdefault(int(key), Counter())[str(status)] += int(count)
    return {k: dict(v) for k, v in out.items()}


def list_server_overviews(
    conn: Connection, *, server_id: int | None = None
) -> list[ServerOverview]:
    """Every server with its current score and how many monitors watch it, by status.

    Scorer rows (``monitors.type = 'score'``) are left out of the counts: they are not
    monitors anyone can promote.
    """
    only_agents = monitors.c.type == str(MonitorType.MONITOR)
    if server_id is not None:
        only_agents = and_(only_agents, server_scores.c.server_id == server_id)
    counts = _counts(conn, server_scores.c.server_id, only_agents)
    query = select(
        servers.c.id,
        servers.c.ip,
        servers.c.ip_version,
        servers.c.hostname,
        servers.c.score_raw,
        servers.c.score_ts,
        servers.c.deletion_on,
    ).order_by(servers.c.ip_version, servers.c.id)
    if server_id is not None:
        query = query.where(servers.c.id == server_id)
    return [
        ServerOverview(
            id=int(r.id),
            ip=r.ip,
            ip_version=str(r.ip_version),
            hostname=r.hostname,
            score_raw=float(r.score_raw),
            score_ts=r.score_ts,
            deletion_on=r.deletion_on,
            monitor_counts=counts.get(int(r.id), {}),
        )
        for r in conn.execute(query)
    ]


def get_server_overview(conn: Connection, *, server_id: int) -> ServerOverview | None:
    """One server as in the list, or None when there is no such server."""
    found = list_server_overviews(conn, server_id=server_id)
    return found[0] if found else None


def list_server_assignments(conn: Connection, *, server_id: int) -> list[Assignment]:
    """Every monitor and scorer assigned to a server, agents first, by status then name."""
    rows = conn.execute(
        select(
            server_scores.c.monitor_id,
            monitors.c.tls_name,
            monitors.c.type,
            monitors.c.status.label("monitor_status"),
            *_ROLE_COLUMNS,
        )
        .select_from(server_scores.join(monitors, monitors.c.id == server_scores.c.monitor_id))
        .where(server_scores.c.server_id == server_id)
    )
    items = [
        Assignment(
            monitor_id=int(r.monitor_id),
            tls_name=r.tls_name,
            monitor_type=str(r.type),
            monitor_status=str(r.monitor_status),
            status=str(r.status),
            score_raw=float(r.score_raw),
            score_ts=r.score_ts,
            constraint_violation_type=r.constraint_violation_type,
            pause_reason=r.pause_reason,
        )
        for r in rows
    ]
    items.sort(
        key=lambda a: (
            a.monitor_type != str(MonitorType.MONITOR),
            STATUS_RANK.get(a.status, 9),
            a.tls_name or "",
            a.monitor_id,
        )
    )
    return items


def server_history(
    conn: Connection,
    *,
    server_id: int,
    since: datetime,
    limit: int = HISTORY_ROW_LIMIT,
    after_id: int | None = None,
) -> list[HistoryPoint]:
    """A server's ``log_scores`` rows at or after ``since``, oldest first.

    At most ``limit`` rows: the newest ones, so a busy server still shows its recent past.
    ``after_id`` keeps only rows above it (those not yet in ClickHouse, when the page reads the
    rest there).
    """
    where = and_(log_scores.c.server_id == server_id, log_scores.c.ts >= db_seconds(since))
    if after_id is not None:
        where = and_(where, log_scores.c.id > after_id)
    newest = (
        select(
            log_scores.c.id,
            log_scores.c.monitor_id,
            monitors.c.type,
            log_scores.c.ts,
            log_scores.c.score,
            log_scores.c.step,
            log_scores.c.offset,
            log_scores.c.rtt,
        )
        .select_from(log_scores.outerjoin(monitors, monitors.c.id == log_scores.c.monitor_id))
        .where(where)
        .order_by(log_scores.c.ts.desc(), log_scores.c.id.desc())
        .limit(limit)
    )
    rows = list(conn.execute(newest))
    rows.reverse()
    return [
        HistoryPoint(
            monitor_id=None if r.monitor_id is None else int(r.monitor_id),
            monitor_type=None if r.type is None else str(r.type),
            ts=r.ts,
            score=float(r.score),
            step=float(r.step),
            offset=None if r.offset is None else float(r.offset),
            rtt=None if r.rtt is None else int(r.rtt),
        )
        for r in rows
    ]


def monitor_types(conn: Connection, ids: set[int]) -> dict[int, str]:
    """``monitors.type`` of monitor ids (for history rows read from ClickHouse)."""
    if not ids:
        return {}
    rows = conn.execute(
        select(monitors.c.id, monitors.c.type).where(monitors.c.id.in_(sorted(ids)))
    )
    return {int(r.id): str(r.type) for r in rows}


def monitor_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    """Display names (tls_name, else hostname) for monitor ids, e.g. the series of a graph."""
    if not ids:
        return {}
    rows = conn.execute(
        select(monitors.c.id, monitors.c.tls_name, monitors.c.hostname).where(
            monitors.c.id.in_(sorted(ids))
        )
    )
    return {int(r.id): (r.tls_name or r.hostname or f"monitor {r.id}") for r in rows}


def list_monitor_overviews(
    conn: Connection, *, monitor_id: int | None = None
) -> list[MonitorOverview]:
    """Every agent monitor (not scorers, not the per-IP-version settings rows), or only
    ``monitor_id``.

    The settings rows have no IP; deleted monitors are listed too, with their status.
    """
    agents = monitors.c.type == str(MonitorType.MONITOR)
    if monitor_id is not None:
        agents = and_(agents, monitors.c.id == monitor_id)
    counts = _counts(conn, server_scores.c.monitor_id, agents)
    rows = conn.execute(
        select(
            monitors.c.id,
            monitors.c.tls_name,
            monitors.c.hostname,
            monitors.c.ip,
            monitors.c.ip_version,
            monitors.c.status,
            monitors.c.client_version,
            monitors.c.last_seen,
            monitors.c.last_submit,
            monitors.c.account_id,
            accounts.c.name.label("account_name"),
        )
        .select_from(monitors.outerjoin(accounts, accounts.c.id == monitors.c.account_id))
        .where(and_(agents, monitors.c.ip.is_not(None)))
        .order_by(monitors.c.tls_name, monitors.c.ip_version, monitors.c.id)
    )
    return [
        MonitorOverview(
            id=int(r.id),
            tls_name=r.tls_name,
            hostname=r.hostname,
            ip=r.ip,
            ip_version=None if r.ip_version is None else str(r.ip_version),
            status=str(r.status),
            client_version=r.client_version,
            last_seen=r.last_seen,
            last_submit=r.last_submit,
            account_id=None if r.account_id is None else int(r.account_id),
            account_name=r.account_name,
            server_counts=counts.get(int(r.id), {}),
        )
        for r in rows
    ]


def get_monitor_overview(conn: Connection, *, monitor_id: int) -> MonitorOverview | None:
    """One agent monitor as in the list, or None (no such monitor, or a scorer/settings row)."""
    found = list_monitor_overviews(conn, monitor_id=monitor_id)
    return found[0] if found else None


def list_monitor_assignments(conn: Connection, *, monitor_id: int) -> list[ServerAssignment]:
    """The servers a monitor is assigned to, by status (active first), then address."""
    rows = conn.execute(
        select(
            server_scores.c.server_id,
            servers.c.ip,
            servers.c.hostname,
            *_ROLE_COLUMNS,
        )
        .select_from(server_scores.join(servers, servers.c.id == server_scores.c.server_id))
        .where(server_scores.c.monitor_id == monitor_id)
    )
    items = [
        ServerAssignment(
            server_id=int(r.server_id),
            ip=r.ip,
            hostname=r.hostname,
            status=str(r.status),
            score_raw=float(r.score_raw),
            score_ts=r.score_ts,
            constraint_violation_type=r.constraint_violation_type,
            pause_reason=r.pause_reason,
        )
        for r in rows
    ]
    items.sort(key=lambda a: (STATUS_RANK.get(a.status, 9), a.ip, a.server_id))
    return items


def measurement_counts(conn: Connection) -> dict[tuple[int, int], int]:
    """``log_scores`` rows written for agent results, per (server id, monitor id).

    Scorer output rows are not counted: these are the measurements agents submitted.
    """
    rows = conn.execute(
        select(log_scores.c.server_id, log_scores.c.monitor_id, func.count())
        .select_from(log_scores.join(monitors, monitors.c.id == log_scores.c.monitor_id))
        .where(monitors.c.type == str(MonitorType.MONITOR))
        .group_by(log_scores.c.server_id, log_scores.c.monitor_id)
    )
    return {(int(s), int(m)): int(n) for s, m, n in rows}
