"""Queries of the selector (spec/database.md §4.4, Q27–Q35).

Every time comes from the caller's clock (never ``NOW()``), so MySQL, MariaDB and SQLite
agree and tests control time. Q5 (status changes) is shared: ``ntpmon.db.common``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from ntpmon.common.clock import db_seconds
from ntpmon.db.models import MonitorType, Server, from_row
from ntpmon.db.tables import (
    accounts,
    log_scores,
    monitors,
    server_scores,
    servers,
    servers_monitor_review,
)
from ntpmon.selector.constants import LOOKBACK, REVIEW_BATCH
from ntpmon.selector.types import MonitorRow

_AVG_SCALE = Decimal("0.0001")  # MySQL: AVG of an integer column has 4 decimals (half up)
_MS = Decimal(1000)


def get_servers_monitor_review(
    conn: Connection, *, now: datetime, limit: int = REVIEW_BATCH
) -> list[int]:
    """Q27: servers due for review (never reviewed first), oldest due first."""
    smr = servers_monitor_review
    query = (
        select(smr.c.server_id)
        .where(or_(smr.c.next_review <= db_seconds(now), smr.c.next_review.is_(None)))
        .order_by(smr.c.next_review, smr.c.server_id)  # NULLs sort first on both dialects
        .limit(int(limit))
    )
    return [int(row[0]) for row in conn.execute(query)]


def _prebuilt_update(table: Table, keys: tuple[str, ...], **values: object) -> Update:
    """An UPDATE built once, keyed on ``keys``; ``values`` maps a column to a literal or to
    ``...`` for "bound per call" (parameter ``v_<column>``, key parameters ``k_<column>``).

    Constructing a Core statement costs more than running a small one, and these run several
    times per server; Core statements are immutable, so sharing them is safe.
    """
    assignments = {
        column: bindparam(f"v_{column}", type_=table.c[column].type) if value is ... else value
        for column, value in values.items()
    }
    where = [table.c[k] == bindparam(f"k_{k}", type_=table.c[k].type) for k in keys]
    return update(table).where(*where).values(assignments)


_REVIEWED = _prebuilt_update(
    servers_monitor_review, ("server_id",), last_review=..., next_review=...
)
_REVIEWED_CHANGED = _prebuilt_update(
    servers_monitor_review, ("server_id",), last_review=..., last_change=..., next_review=...
)


def update_servers_monitor_review(
    conn: Connection, *, server_id: int, now: datetime, next_review: datetime
) -> int:
    """Q28: reviewed, nothing changed."""
    params = {
        "k_server_id": server_id,
        "v_last_review": db_seconds(now),
        "v_next_review": db_seconds(next_review),
    }
    return conn.execute(_REVIEWED, params).rowcount


def update_servers_monitor_review_changed(
    conn: Connection, *, server_id: int, now: datetime, next_review: datetime
) -> int:
    """Q29: reviewed and at least one status change applied."""
    params = {
        "k_server_id": server_id,
        "v_last_review": db_seconds(now),
        "v_last_change": db_seconds(now),
        "v_next_review": db_seconds(next_review),
    }
    return conn.execute(_REVIEWED_CHANGED, params).rowcount


_GET_SERVER = select(servers).where(servers.c.id == bindparam("k_id"))


def get_server(conn: Connection, *, id: int) -> Server | None:
    """Q30: the server under review (the statement is built once, as the UPDATEs below)."""
    row = conn.execute(_GET_SERVER, {"k_id": id}).first()
    return from_row(Server, row) if row else None


def mysql_avg_rtt_ms(rtt_sum: int | Decimal | None, rtt_count: int) -> Decimal | None:
    """``AVG(rtt)/1000`` exactly as MySQL computes it (DECIMAL, 4 decimals, half up, then /1000).

    Computing the aggregate figures in Python keeps SQLite's results identical to MySQL's.
    """
    if rtt_sum is None or rtt_count == 0:
        return None
    avg = (Decimal(rtt_sum) / Decimal(rtt_count)).quantize(_AVG_SCALE, rounding=ROUND_HALF_UP)
    return avg / _MS


def monitor_priority(avg_rtt_ms: Decimal | None, avg_step: float) -> int | None:
    """``ROUND(avg_rtt × (1 + 2 × (1 − avg_step)))``; MySQL rounds the DOUBLE half-to-even."""
    if avg_rtt_ms is None:
        return None
    return round(float(avg_rtt_ms) * (1 + (2 * (1 - avg_step))))


def priority_sort_key(row: MonitorRow) -> tuple[object, ...]:
    """healthy desc, priority asc (NULL first, as MySQL), avg_step desc, avg_rtt asc, id."""
    return (
        not row.healthy,
        row.monitor_priority is not None,
        row.monitor_priority or 0,
        -row.avg_step,
        row.avg_rtt is not None,
        row.avg_rtt or 0.0,
        row.id,
    )


def _monitor_priority_query() -> Select[Any]:
    """Q31 as one Core statement, built once: ``:server_id`` and ``:cutoff`` are bound per call.

    The log rows are aggregated per monitor in a subquery and joined to the monitor, its
    assignment and its account (one row each), which is what upstream's GROUP BY amounts to.
    """
    ls = log_scores
    server_id, cutoff = bindparam("server_id"), bindparam("cutoff", type_=ls.c.ts.type)
    agg = (
        select(
            ls.c.monitor_id,
            func.sum(ls.c.rtt).label("rtt_sum"),
            func.count(ls.c.rtt).label("rtt_count"),
            func.avg(ls.c.step).label("avg_step"),
            func.count().label("n"),
        )
        .where(ls.c.server_id == server_id, ls.c.ts > cutoff)
        .group_by(ls.c.monitor_id)
        .subquery("agg")
    )
    m, ss, a = monitors, server_scores, accounts
    return (
        select(
            m.c.id,
            m.c.id_token,
            m.c.tls_name,
            m.c.account_id,
            m.c.ip,
            m.c.status.label("monitor_status"),
            ss.c.status,
            agg.c.rtt_sum,
            agg.c.rtt_count,
            agg.c.avg_step,
            agg.c.n,
            a.c.flags,
            ss.c.constraint_violation_type,
            ss.c.constraint_violation_since,
            ss.c.last_constraint_check,
            ss.c.pause_reason,
        )
        .select_from(
            agg.join(m, m.c.id == agg.c.monitor_id)
            .outerjoin(ss, and_(ss.c.server_id == server_id, ss.c.monitor_id == m.c.id))
            .outerjoin(a, a.c.id == m.c.account_id)
        )
        .where(m.c.type == str(MonitorType.MONITOR))
    )


# Immutable (Core statements are), built once because constructing it costs more than running it.
MONITOR_PRIORITY_QUERY = _monitor_priority_query()


def get_monitor_priority(conn: Connection, *, server_id: int, now: datetime) -> list[MonitorRow]:
    """Q31: every agent monitor with log scores for the server in the last 24 h, best first.

    ``monitor id`` is appended as the final sort key so ties are deterministic (§2.2).
    """
    query = MONITOR_PRIORITY_QUERY
    params = {"server_id": server_id, "cutoff": db_seconds(now - LOOKBACK)}
    rows = []
    for r in conn.execute(query, params):
        avg_step = float(r.avg_step)
        avg_rtt = mysql_avg_rtt_ms(r.rtt_sum, int(r.rtt_count))
        rows.append(
            MonitorRow(
                id=int(r.id),
                id_token=r.id_token,
                tls_name=r.tls_name,
                account_id=r.account_id,
                monitor_ip=r.ip,
                monitor_status=r.monitor_status,
                status=r.status,
                avg_rtt=float(avg_rtt) if avg_rtt is not None else None,
                monitor_priority=monitor_priority(avg_rtt, avg_step),
                avg_step=avg_step,
                healthy=avg_step >= 0,
                count=int(r.n),
                account_flags=r.flags,
                constraint_violation_type=r.constraint_violation_type,
                constraint_violation_since=r.constraint_violation_since,
                last_constraint_check=r.last_constraint_check,
                pause_reason=r.pause_reason,
            )
        )
    rows.sort(key=priority_sort_key)
    return rows


_ASSIGNMENT = ("server_id", "monitor_id")
_SET_VIOLATION = _prebuilt_update(
    server_scores, _ASSIGNMENT, constraint_violation_type=..., constraint_violation_since=...
)
_CLEAR_VIOLATION = _prebuilt_update(
    server_scores,
    _ASSIGNMENT,
    constraint_violation_type=None,
    constraint_violation_since=None,
    last_constraint_check=...,
    pause_reason=None,
)
_SET_PAUSE_REASON = _prebuilt_update(
    server_scores, _ASSIGNMENT, pause_reason=..., last_constraint_check=...
)
_TOUCH_LAST_CHECK = _prebuilt_update(server_scores, _ASSIGNMENT, last_constraint_check=...)


def _update_assignment(
    conn: Connection, stmt: Update, server_id: int, monitor_id: int, **values: object
) -> int:
    """Run one prebuilt UPDATE of a (server, monitor) row; returns the rows matched."""
    params = {"k_server_id": server_id, "k_monitor_id": monitor_id}
    params.update({f"v_{column}": value for column, value in values.items()})
    return conn.execute(stmt, params).rowcount


def update_server_score_constraint_violation(
    conn: Connection, *, server_id: int, monitor_id: int, type: str, since: datetime
) -> int:
    """Q32: record a (new or re-asserted) violation with the time it was first seen."""
    return _update_assignment(
        conn,
        _SET_VIOLATION,
        server_id,
        monitor_id,
        constraint_violation_type=str(type),
        constraint_violation_since=db_seconds(since),
    )


def clear_server_score_constraint_violation(
    conn: Connection, *, server_id: int, monitor_id: int, now: datetime
) -> int:
    """Q33: the violation has gone: forget it and its pause reason."""
    return _update_assignment(
        conn, _CLEAR_VIOLATION, server_id, monitor_id, last_constraint_check=db_seconds(now)
    )


def update_server_score_pause_reason(
    conn: Connection, *, server_id: int, monitor_id: int, pause_reason: str, now: datetime
) -> int:
    """Q34: why a monitor was paused for this server (after Q5 ``paused``)."""
    return _update_assignment(
        conn,
        _SET_PAUSE_REASON,
        server_id,
        monitor_id,
        pause_reason=str(pause_reason),
        last_constraint_check=db_seconds(now),
    )


def update_server_score_last_constraint_check(
    conn: Connection, *, server_id: int, monitor_id: int, now: datetime
) -> int:
    """Q35: a paused monitor's constraint was re-checked."""
    return _update_assignment(
        conn, _TOUCH_LAST_CHECK, server_id, monitor_id, last_constraint_check=db_seconds(now)
    )
