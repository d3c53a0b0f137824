"""monitor-api's queries (spec/database.md §4.2, Q6-Q15), in the shapes the RPCs need.

SubmitResults costs a fixed number of round trips whatever the batch size: one guarded
``last_submit`` update that also serialises concurrent batches of a monitor, one read of every
(server, assignment) pair by an IN list, one CASE update of the assignments, at most one of the
servers' strata, and one multi-row insert into ``log_scores``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, case, or_, select, update

from ntpmon.common.clock import db_micros, db_seconds
from ntpmon.db.models import Monitor, from_row
from ntpmon.db.tables import accounts, monitors, server_scores, servers

SYSTEM_MONITOR_TEMPLATE = "settings-{ip_version}.system"
REQUEUE_ALWAYS_AFTER = timedelta(minutes=120)
LOW_SCORE = -90


@dataclass(frozen=True, slots=True)
class MonitorIdentity:
    """A monitor row with the account fields used for metric labels (0/"" without account)."""

    monitor: Monitor
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


@dataclass(frozen=True, slots=True)
class DueServer:
    """A server handed out by GetServers: only what the response needs."""

    id: int
    ip: str


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """The new state of one assignment after a batch (stratum None = leave unchanged)."""

    score_id: int
    score_ts: datetime
    score_raw: float
    stratum: int | None


def get_monitor_for_identity(
    conn: Connection, *, tls_name: str, mon_id: str
) -> MonitorIdentity | None:
    """Q6: the current row of an authenticated name; an empty ``mon_id`` matches any row."""
    query = (
        select(monitors, accounts.c.id_token.label("account_token"))
        .select_from(monitors.outerjoin(accounts, monitors.c.account_id == accounts.c.id))
        .where(
            monitors.c.tls_name == tls_name,
            or_(monitors.c.ip == mon_id, mon_id == ""),
            monitors.c.is_current == 1,
            monitors.c.deleted_on.is_(None),
        )
        .order_by(monitors.c.id)
        .limit(1)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    monitor = from_row(Monitor, row)
    return MonitorIdentity(monitor, monitor.account_id or 0, row.account_token or "")


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


def update_monitor_seen(conn: Connection, *, id: int, now: datetime) -> int:
    """Q8: the agent was here (GetConfig/GetServers, even when not live)."""
    return conn.execute(
        update(monitors).where(monitors.c.id == id).values(last_seen=db_micros(now))
    ).rowcount


def update_monitor_version(conn: Connection, *, id: int, client_version: str) -> int:
    """Q9: the agent's version parsed from its user agent."""
    return conn.execute(
        update(monitors).where(monitors.c.id == id).values(client_version=client_version[:255])
    ).rowcount


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
    s, ss = servers, server_scores
    cutoff = db_seconds(now)
    due = or_(
        ss.c.queue_ts.is_(None),
        and_(
            ss.c.status == "active",
            ss.c.score_raw > LOW_SCORE,
            ss.c.queue_ts < cutoff - timedelta(seconds=interval),
        ),
        and_(
            ss.c.status == "testing",
            ss.c.score_raw > LOW_SCORE,
            ss.c.queue_ts < cutoff - timedelta(seconds=interval_testing),
        ),
        ss.c.queue_ts < cutoff - REQUEUE_ALWAYS_AFTER,
    )
    query = (
        select(s.c.id, s.c.ip)
        .select_from(s.join(ss, ss.c.server_id == s.c.id))
        .where(
            ss.c.monitor_id == monitor_id,
            s.c.ip_version == ip_version,
            due,
            or_(s.c.score_ts.is_(None), s.c.score_ts < cutoff - timedelta(seconds=interval_all)),
            or_(s.c.deletion_on.is_(None), s.c.deletion_on > _today(now)),
        )
        .order_by(ss.c.queue_ts, ss.c.id)
        .limit(limit)
    )
    return [DueServer(r.id, r.ip) for r in conn.execute(query)]


def _today(now: datetime) -> date:
    return db_seconds(now).date()


def update_server_score_queue(
    conn: Connection, *, monitor_id: int, server_ids: Iterable[int], now: datetime
) -> int:
    """Q11: stamp the handed-out assignments; the guard keeps ``queue_ts`` monotonic."""
    ids = list(server_ids)
    if not ids:
        return 0
    queue_ts = db_seconds(now)
    return conn.execute(
        update(server_scores)
        .where(
            server_scores.c.monitor_id == monitor_id,
            server_scores.c.server_id.in_(ids),
            or_(server_scores.c.queue_ts < queue_ts, server_scores.c.queue_ts.is_(None)),
        )
        .values(queue_ts=queue_ts)
    ).rowcount


def claim_batch(conn: Connection, *, monitor_id: int, batch_time: datetime, now: datetime) -> bool:
    """Q12, guarded: move ``last_submit`` forward to the batch time, or report a stale batch.

    Run inside the batch transaction, it locks the monitor row, so two submissions of one
    monitor are serialised and a replay can never pass the ordering check twice.
    """
    last_submit = db_micros(batch_time)
    result = conn.execute(
        update(monitors)
        .where(
            monitors.c.id == monitor_id,
            or_(monitors.c.last_submit.is_(None), monitors.c.last_submit < last_submit),
        )
        .values(last_submit=last_submit, last_seen=db_micros(now))
    )
    return result.rowcount == 1


def get_last_submit(conn: Connection, *, monitor_id: int) -> datetime | None:
    """The committed ``last_submit`` (a locking read: the batch snapshot may be older)."""
    return conn.execute(
        select(monitors.c.last_submit).where(monitors.c.id == monitor_id).with_for_update()
    ).scalar()


def get_assignments_by_ip(
    conn: Connection, *, monitor_id: int, ips: Iterable[str]
) -> dict[str, Assignment]:
    """Q13 + Q2 for a whole batch: servers by IP text with this monitor's assignment rows."""
    wanted = sorted(set(ips))
    if not wanted:
        return {}
    s, ss = servers, server_scores
    query = (
        select(
            s.c.id,
            s.c.ip,
            s.c.stratum,
            ss.c.id.label("score_id"),
            ss.c.score_raw,
            ss.c.stratum.label("score_stratum"),
        )
        .select_from(s.outerjoin(ss, and_(ss.c.server_id == s.c.id, ss.c.monitor_id == monitor_id)))
        .where(s.c.ip.in_(wanted))
    )
    return {
        row.ip: Assignment(
            server_id=row.id,
            server_stratum=row.stratum,
            score_id=row.score_id,
            score_raw=row.score_raw if row.score_raw is not None else 0.0,
            score_stratum=row.score_stratum,
        )
        for row in conn.execute(query)
    }


def update_server_scores(conn: Connection, updates: list[ScoreUpdate]) -> int:
    """Q3 + Q14 for a whole batch: one UPDATE with CASE per column."""
    if not updates:
        return 0
    col = server_scores.c
    ids = [u.score_id for u in updates]
    values: dict[str, object] = {
        "score_ts": case({u.score_id: db_seconds(u.score_ts) for u in updates}, value=col.id),
        "score_raw": case({u.score_id: u.score_raw for u in updates}, value=col.id),
    }
    strata = {u.score_id: u.stratum for u in updates if u.stratum is not None}
    if strata:
        values["stratum"] = case(strata, value=col.id, else_=col.stratum)
    return conn.execute(update(server_scores).where(col.id.in_(ids)).values(**values)).rowcount


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
