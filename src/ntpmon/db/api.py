"""monitor-api's queries (spec/database.md §4.2, Q6-Q15), in the shapes the RPCs need.

SubmitResults costs a fixed number of round trips whatever the batch size: the lookup (a
transaction of its own, see ``MonitorService.submit_results``), one guarded ``last_submit``
update that also serialises concurrent batches of a monitor, one read of every (server,
assignment) pair by an IN list, one CASE update of the assignments, at most one of the
servers' strata, one multi-row insert into ``log_scores`` and the commits.

The statements every RPC runs are built once, at import, with named bind parameters (IN lists
as expanding parameters), and wrapped as :class:`~ntpmon.db.driversql.HotStatement`: on
PyMySQL they run as SQL text rendered once from the Core statement, without SQLAlchemy's
per-call compilation and result machinery (which cost more CPU than the driver's own work);
on SQLite as the Core statements. They are immutable values, not state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    or_,
    select,
    update,
)

from ntpmon.common.clock import as_utc, db_micros, db_seconds
from ntpmon.db.driversql import HotStatement
from ntpmon.db.models import Monitor, from_row
from ntpmon.db.tables import accounts, monitors, server_scores, servers, traceroute_state
from ntpmon.traceroute.plan import Health, TraceState

SYSTEM_MONITOR_TEMPLATE = "settings-{ip_version}.system"
REQUEUE_ALWAYS_AFTER = timedelta(minutes=120)
LOW_SCORE = -90


@dataclass(frozen=True, slots=True)
class CallerMonitor:
    """The columns of a ``monitors`` row the RPCs use (the caller of an RPC).

    Only these are read: the driver parses every column's metadata of every result in Python,
    so the full row would cost twice the CPU of this lookup for nothing.
    """

    id: int
    account_id: int | None
    ip: str | None
    ip_version: str | None
    tls_name: str | None
    status: str
    config: str
    client_version: str
    last_submit: datetime | None


@dataclass(frozen=True, slots=True)
class MonitorIdentity:
    """A monitor row with the account fields used for metric labels (0/"" without account)."""

    monitor: CallerMonitor
    account_id: int
    account_token: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """A server by IP with this monitor's ``server_scores`` row (None when unassigned)."""

    server_id: int
    server_stratum: int | None
    score_id: int | None
    score_raw: float
    score_stratum: int | None
    trace_state: TraceState | None = None
    """This monitor's ``traceroute_state`` row of the server (issue 17), read in the same query."""


@dataclass(frozen=True, slots=True)
class DueServer:
    """A server handed out by GetServers: only what the response needs.

    ``trace_due``/``last_trace`` come from ``traceroute_state`` (issue 17), read in the same
    query so asking for traces costs GetServers no extra round trip.
    """

    id: int
    ip: str
    trace_due: datetime | None = None
    last_trace: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """The new state of one assignment after a batch (stratum None = leave unchanged)."""

    score_id: int
    score_ts: datetime
    score_raw: float
    stratum: int | None


def _identity_query(*, any_ip: bool) -> Select[Any]:
    m = monitors.c
    query = (
        select(
            *(m[f.name] for f in fields(CallerMonitor)),
            accounts.c.id_token.label("account_token"),
        )
        .select_from(monitors.outerjoin(accounts, m.account_id == accounts.c.id))
        .where(m.tls_name == bindparam("tls_name"), m.is_current == 1, m.deleted_on.is_(None))
        .order_by(m.id)
        .limit(1)
    )
    return query if any_ip else query.where(m.ip == bindparam("mon_id"))


_IDENTITY_ANY_IP = HotStatement(_identity_query(any_ip=True))
_IDENTITY_BY_IP = HotStatement(_identity_query(any_ip=False))


def get_monitor_for_identity(
    conn: Connection, *, tls_name: str, mon_id: str
) -> MonitorIdentity | None:
    """Q6: the current row of an authenticated name; an empty ``mon_id`` matches any row."""
    if mon_id == "":
        rows = _IDENTITY_ANY_IP.rows(conn, {"tls_name": tls_name})
    else:
        rows = _IDENTITY_BY_IP.rows(conn, {"tls_name": tls_name, "mon_id": mon_id})
    return _identity(rows[0]) if rows else None


def _identity(row: Sequence[Any]) -> MonitorIdentity:
    """A row of the identity columns (CallerMonitor's, then the account token)."""
    *columns, account_token = row
    monitor = CallerMonitor(*columns)
    return MonitorIdentity(monitor, monitor.account_id or 0, account_token or "")


def get_monitors_by_tls_name(conn: Connection, *, tls_name: str) -> list[Monitor]:
    """Q7: every current row of a name (v4 and v6)."""
    rows = conn.execute(
        select(monitors)
        .where(
            monitors.c.tls_name == tls_name,
            monitors.c.is_current == 1,
            monitors.c.deleted_on.is_(None),
        )
        .order_by(monitors.c.id)
    )
    return [from_row(Monitor, r) for r in rows]


def get_system_monitor_config(conn: Connection, *, ip_version: str | None) -> str | None:
    """The defaults config of ``settings-<ipver>.system``; None unless exactly one row exists."""
    name = SYSTEM_MONITOR_TEMPLATE.format(ip_version=ip_version or "")
    rows = get_monitors_by_tls_name(conn, tls_name=name)
    return rows[0].config if len(rows) == 1 else None


_MONITOR_SEEN = HotStatement(
    update(monitors)
    .where(monitors.c.id == bindparam("b_id"))
    .values(last_seen=bindparam("b_last_seen"))
)


def update_monitor_seen(conn: Connection, *, id: int, now: datetime) -> int:
    """Q8: the agent was here (GetConfig/GetServers, even when not live)."""
    return _MONITOR_SEEN.rowcount(conn, {"b_id": id, "b_last_seen": db_micros(now)})


def update_monitor_version(conn: Connection, *, id: int, client_version: str) -> int:
    """Q9: the agent's version parsed from its user agent."""
    return conn.execute(
        update(monitors).where(monitors.c.id == id).values(client_version=client_version[:255])
    ).rowcount


def _due_servers_query() -> Select[Any]:
    s, ss = servers, server_scores
    due = or_(
        ss.c.queue_ts.is_(None),
        and_(
            ss.c.status == "active",
            ss.c.score_raw > LOW_SCORE,
            ss.c.queue_ts < bindparam("active_before"),
        ),
        and_(
            ss.c.status == "testing",
            ss.c.score_raw > LOW_SCORE,
            ss.c.queue_ts < bindparam("testing_before"),
        ),
        ss.c.queue_ts < bindparam("requeue_before"),
    )
    tr = traceroute_state
    traced = and_(tr.c.monitor_id == ss.c.monitor_id, tr.c.server_id == s.c.id)
    return (
        select(s.c.id, s.c.ip, tr.c.trace_due, tr.c.last_trace)
        .select_from(s.join(ss, ss.c.server_id == s.c.id).outerjoin(tr, traced))
        .where(
            ss.c.monitor_id == bindparam("monitor_id"),
            s.c.ip_version == bindparam("ip_version"),
            due,
            or_(s.c.score_ts.is_(None), s.c.score_ts < bindparam("scored_before")),
            or_(s.c.deletion_on.is_(None), s.c.deletion_on > bindparam("today")),
        )
        .order_by(ss.c.queue_ts, ss.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


_DUE_SERVERS = HotStatement(_due_servers_query())


def select_servers_for_monitor(
    conn: Connection,
    *,
    monitor_id: int,
    ip_version: str | None,
    now: datetime,
    interval: int,
    interval_testing: int,
    interval_all: int,
    limit: int,
) -> list[DueServer]:
    """Q10: the servers due for this monitor, never-queued first (cut-offs from ``now``)."""
    if ip_version is None:
        return []
    cutoff = db_seconds(now)
    params = {
        "monitor_id": monitor_id,
        "ip_version": ip_version,
        "active_before": cutoff - timedelta(seconds=interval),
        "testing_before": cutoff - timedelta(seconds=interval_testing),
        "requeue_before": cutoff - REQUEUE_ALWAYS_AFTER,
        "scored_before": cutoff - timedelta(seconds=interval_all),
        "today": _today(now),
        "limit": limit,
    }
    return [DueServer(*row) for row in _DUE_SERVERS.rows(conn, params)]


def _today(now: datetime) -> date:
    return db_seconds(now).date()


_QUEUE_STAMP = HotStatement(
    update(server_scores)
    .where(
        server_scores.c.monitor_id == bindparam("b_monitor_id"),
        server_scores.c.server_id.in_(bindparam("b_server_ids", expanding=True)),
        or_(
            server_scores.c.queue_ts < bindparam("b_queue_ts"),
            server_scores.c.queue_ts.is_(None),
        ),
    )
    .values(queue_ts=bindparam("b_queue_ts"))
)


def update_server_score_queue(
    conn: Connection, *, monitor_id: int, server_ids: Iterable[int], now: datetime
) -> int:
    """Q11: stamp the handed-out assignments; the guard keeps ``queue_ts`` monotonic."""
    ids = list(server_ids)
    if not ids:
        return 0
    params = {"b_monitor_id": monitor_id, "b_server_ids": ids, "b_queue_ts": db_seconds(now)}
    return _QUEUE_STAMP.rowcount(conn, params)


_CLAIM_BATCH = HotStatement(
    update(monitors)
    .where(
        monitors.c.id == bindparam("b_id"),
        or_(
            monitors.c.last_submit.is_(None),
            monitors.c.last_submit < bindparam("b_last_submit"),
        ),
    )
    .values(last_submit=bindparam("b_last_submit"), last_seen=bindparam("b_last_seen"))
)


def claim_batch(conn: Connection, *, monitor_id: int, batch_time: datetime, now: datetime) -> bool:
    """Q12, guarded: move ``last_submit`` forward to the batch time, or report a stale batch.

    Run inside the batch transaction, it locks the monitor row, so two submissions of one
    monitor are serialised and a replay can never pass the ordering check twice.
    """
    params = {
        "b_id": monitor_id,
        "b_last_submit": db_micros(batch_time),
        "b_last_seen": db_micros(now),
    }
    return _CLAIM_BATCH.rowcount(conn, params) == 1


def get_last_submit(conn: Connection, *, monitor_id: int) -> datetime | None:
    """The committed ``last_submit`` (a locking read: the batch snapshot may be older)."""
    return conn.execute(
        select(monitors.c.last_submit).where(monitors.c.id == monitor_id).with_for_update()
    ).scalar()


def _assignments_query() -> Select[Any]:
    s, ss, tr = servers, server_scores, traceroute_state
    on = and_(ss.c.server_id == s.c.id, ss.c.monitor_id == bindparam("monitor_id"))
    traced = and_(tr.c.server_id == s.c.id, tr.c.monitor_id == bindparam("monitor_id"))
    return (
        select(
            s.c.id,
            s.c.ip,
            s.c.stratum,
            ss.c.id.label("score_id"),
            ss.c.score_raw,
            ss.c.stratum.label("score_stratum"),
            tr.c.health,
            tr.c.health_ts,
            tr.c.trace_due,
            tr.c.last_trace,
        )
        .select_from(s.outerjoin(ss, on).outerjoin(tr, traced))
        .where(s.c.ip.in_(bindparam("ips", expanding=True)))
    )


_ASSIGNMENTS = HotStatement(_assignments_query())


def get_assignments_by_ip(
    conn: Connection, *, monitor_id: int, ips: Iterable[str]
) -> dict[str, Assignment]:
    """Q13 + Q2 for a whole batch: servers by IP text with this monitor's assignment rows.

    A separate read from the lookup on purpose. Folding both into one statement saves a
    round trip but did not pay: as a UNION ALL, or with the caller as a derived table, MariaDB
    spent 2.5-3x the CPU of the two simple reads; as a flat join (the caller by its unique IP)
    MariaDB was cheaper, but the caller's columns repeated on every server row cost PyMySQL
    more parsing than the round trip saved (GetServers' caller + due-servers join likewise).
    """
    wanted = sorted(set(ips))
    if not wanted:
        return {}
    rows = _ASSIGNMENTS.rows(conn, {"monitor_id": monitor_id, "ips": wanted})
    return {
        ip: Assignment(
            server_id=server_id,
            server_stratum=stratum,
            score_id=score_id,
            score_raw=score_raw if score_raw is not None else 0.0,
            score_stratum=score_stratum,
            trace_state=trace_state_of(*traced) if traced[0] is not None else None,
        )
        for server_id, ip, stratum, score_id, score_raw, score_stratum, *traced in rows
    }


def trace_state_of(
    health: str, health_ts: datetime, trace_due: datetime | None, last_trace: datetime | None
) -> TraceState:
    """A ``traceroute_state`` row's columns as the rule's value (times as UTC)."""
    return TraceState(
        Health(health),
        as_utc(health_ts),
        as_utc(trace_due) if trace_due else None,
        as_utc(last_trace) if last_trace else None,
    )


@lru_cache(maxsize=128)
def _score_update(rows: int, strata: int) -> HotStatement:
    """The CASE update for ``rows`` assignments, ``strata`` of them with a new stratum.

    A pure function of the batch's shape (memoised: batches are nearly always the configured
    batch size), so building the statement's ~40 CASE branches is not paid per batch.
    """
    col = server_scores.c

    def whens(value: str, count: int, type_: Any) -> list[tuple[Any, Any]]:
        return [
            (
                bindparam(f"{value}_id{i}", type_=col.id.type),
                bindparam(f"{value}{i}", type_=type_),
            )
            for i in range(count)
        ]

    values: dict[str, object] = {
        "score_ts": case(*whens("ts", rows, col.score_ts.type), value=col.id),
        "score_raw": case(*whens("raw", rows, col.score_raw.type), value=col.id),
    }
    if strata:
        values["stratum"] = case(
            *whens("stratum", strata, col.stratum.type), value=col.id, else_=col.stratum
        )
    return HotStatement(
        update(server_scores).where(col.id.in_(bindparam("ids", expanding=True))).values(**values)
    )


def update_server_scores(conn: Connection, updates: list[ScoreUpdate]) -> int:
    """Q3 + Q14 for a whole batch: one UPDATE with CASE per column."""
    if not updates:
        return 0
    strata = [u for u in updates if u.stratum is not None]
    params: dict[str, object] = {"ids": [u.score_id for u in updates]}
    for i, u in enumerate(updates):
        params[f"ts_id{i}"] = params[f"raw_id{i}"] = u.score_id
        params[f"ts{i}"] = db_seconds(u.score_ts)
        params[f"raw{i}"] = u.score_raw
    for i, u in enumerate(strata):
        params[f"stratum_id{i}"] = u.score_id
        params[f"stratum{i}"] = u.stratum
    return _score_update(len(updates), len(strata)).rowcount(conn, params)


def update_servers_stratum(conn: Connection, strata: Mapping[int, int]) -> int:
    """Q15 for a whole batch: only rows whose stratum really changes are written (hot table)."""
    if not strata:
        return 0
    col = servers.c
    new = case(dict(strata), value=col.id)
    return conn.execute(
        update(servers)
        .where(col.id.in_(list(strata)), or_(col.stratum.is_(None), col.stratum != new))
        .values(stratum=new)
    ).rowcount
