"""Queries of the selector (spec/database.md §4.4, Q27–Q35).

Every time comes from the caller's clock (never ``NOW()``), so MySQL, MariaDB and SQLite
agree and tests control time. Q5 (status changes) is shared: ``ntpmon.db.common``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from ntpmon.common.clock import db_seconds
from ntpmon.db.models import LOOKBACK, REVIEW_BATCH, MonitorRow, MonitorType, Server, from_row
from ntpmon.db.tables import (
    accounts,
    log_scores,
    monitors,
    server_scores,
    servers,
    servers_monitor_review,
)

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


_REVIEWED_MANY = update(servers_monitor_review).where(
    servers_monitor_review.c.server_id.in_(bindparam("k_server_ids", expanding=True))
)


def reschedule_servers_monitor_review(
    conn: Connection,
    *,
    server_ids: Sequence[int],
    now: datetime,
    next_review: datetime,
    changed: bool,
) -> int:
    """Q28 (``changed`` false) or Q29 for several servers in one statement: a batch of
    reviews shares ``now`` and so writes the same values to every row."""
    if not server_ids:
        return 0
    values = {"last_review": db_seconds(now), "next_review": db_seconds(next_review)}
    if changed:
        values["last_change"] = db_seconds(now)
    stmt = _REVIEWED_MANY.values(values)
    return conn.execute(stmt, {"k_server_ids": list(server_ids)}).rowcount


_GET_SERVER = select(servers).where(servers.c.id == bindparam("k_id"))
_GET_SERVERS = select(servers).where(servers.c.id.in_(bindparam("k_ids", expanding=True)))


def get_servers(conn: Connection, *, ids: Sequence[int]) -> dict[int, Server]:
    """Q30 for a batch of servers in one round trip (the missing ones are absent)."""
    if not ids:
        return {}
    rows = conn.execute(_GET_SERVERS, {"k_ids": list(ids)})
    return {int(row.id): from_row(Server, row) for row in rows}


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
    """Q31 as one Core statement, built once, for one or several servers: ``:server_ids``
    (an expanding IN list) and ``:cutoff`` are bound per call.

    The log rows are aggregated per server and monitor in a subquery and joined to the
    monitor, its assignment and its account (one row each), which is what upstream's
    GROUP BY amounts to for each server.
    """
    ls = log_scores
    server_ids = bindparam("server_ids", expanding=True)
    cutoff = bindparam("cutoff", type_=ls.c.ts.type)
    agg = (
        select(
            ls.c.server_id,
            ls.c.monitor_id,
            func.sum(ls.c.rtt).label("rtt_sum"),
            func.count(ls.c.rtt).label("rtt_count"),
            func.avg(ls.c.step).label("avg_step"),
            func.count().label("n"),
        )
        .where(ls.c.server_id.in_(server_ids), ls.c.ts > cutoff)
        .group_by(ls.c.server_id, ls.c.monitor_id)
        .subquery("agg")
    )
    m, ss, a = monitors, server_scores, accounts
    return (
        select(
            agg.c.server_id,
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
            .outerjoin(ss, and_(ss.c.server_id == agg.c.server_id, ss.c.monitor_id == m.c.id))
            .outerjoin(a, a.c.id == m.c.account_id)
        )
        .where(m.c.type == str(MonitorType.MONITOR))
    )


# Immutable (Core statements are), built once because constructing it costs more than running it.
MONITOR_PRIORITY_QUERY = _monitor_priority_query()


def _monitor_row(r: Row[Any]) -> MonitorRow:
    """One row of Q31 with MySQL's AVG/ROUND arithmetic applied in Python (both dialects)."""
    avg_step = float(r.avg_step)
    avg_rtt = mysql_avg_rtt_ms(r.rtt_sum, int(r.rtt_count))
    return MonitorRow(
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


def get_monitor_priorities(
    conn: Connection, *, server_ids: Sequence[int], now: datetime
) -> dict[int, list[MonitorRow]]:
    """Q31 for several servers in one round trip: each server's rows, best first (every
    requested server is a key, with no rows if no monitor has data for it)."""
    result: dict[int, list[MonitorRow]] = {int(sid): [] for sid in server_ids}
    if not result:
        return result
    params = {"server_ids": list(result), "cutoff": db_seconds(now - LOOKBACK)}
    for r in conn.execute(MONITOR_PRIORITY_QUERY, params):
        result[int(r.server_id)].append(_monitor_row(r))
    for rows in result.values():
        rows.sort(key=priority_sort_key)
    return result


def get_monitor_priority(conn: Connection, *, server_id: int, now: datetime) -> list[MonitorRow]:
    """Q31: every agent monitor with log scores for the server in the last 24 h, best first.

    ``monitor id`` is appended as the final sort key so ties are deterministic (§2.2).
    """
    return get_monitor_priorities(conn, server_ids=[server_id], now=now)[int(server_id)]


_ASSIGNMENT = ("server_id", "monitor_id")
_SET_VIOLATION = _prebuilt_update(
    server_scores, _ASSIGNMENT, constraint_violation_type=..., constraint_violation_since=...
)
_CLEAR_VIOLATION = _prebuilt_update(
    server_scores,
    _ASSIGNMENT,
    constraint_violation_type=...,
    constraint_violation_since=...,
    last_constraint_check=...,
    pause_reason=...,
)
_SET_PAUSE_REASON = _prebuilt_update(
    server_scores, _ASSIGNMENT, pause_reason=..., last_constraint_check=...
)
_TOUCH_LAST_CHECK = _prebuilt_update(server_scores, _ASSIGNMENT, last_constraint_check=...)


# The columns each of Q5 and Q32–Q35 writes, with database-ready values: shared by the
# single-row queries and by ``update_assignments`` so both write exactly the same.
def status_values(status: str) -> dict[str, object]:
    """Q5's column."""
    return {"status": str(status)}


def violation_values(type: str, since: datetime) -> dict[str, object]:
    """Q32's columns."""
    return {"constraint_violation_type": str(type), "constraint_violation_since": db_seconds(since)}


def cleared_violation_values(now: datetime) -> dict[str, object]:
    """Q33's columns."""
    return {
        "constraint_violation_type": None,
        "constraint_violation_since": None,
        "last_constraint_check": db_seconds(now),
        "pause_reason": None,
    }


def pause_reason_values(pause_reason: str, now: datetime) -> dict[str, object]:
    """Q34's columns."""
    return {"pause_reason": str(pause_reason), "last_constraint_check": db_seconds(now)}


def last_check_values(now: datetime) -> dict[str, object]:
    """Q35's column."""
    return {"last_constraint_check": db_seconds(now)}


def _update_assignment(
    conn: Connection, stmt: Update, server_id: int, monitor_id: int, values: dict[str, object]
) -> int:
    """Run one prebuilt UPDATE of a (server, monitor) row; returns the rows matched."""
    params = {"k_server_id": server_id, "k_monitor_id": monitor_id}
    params.update({f"v_{column}": value for column, value in values.items()})
    return conn.execute(stmt, params).rowcount


def update_server_score_constraint_violation(
    conn: Connection, *, server_id: int, monitor_id: int, type: str, since: datetime
) -> int:
    """Q32: record a (new or re-asserted) violation with the time it was first seen."""
    values = violation_values(type, since)
    return _update_assignment(conn, _SET_VIOLATION, server_id, monitor_id, values)


def clear_server_score_constraint_violation(
    conn: Connection, *, server_id: int, monitor_id: int, now: datetime
) -> int:
    """Q33: the violation has gone: forget it and its pause reason."""
    values = cleared_violation_values(now)
    return _update_assignment(conn, _CLEAR_VIOLATION, server_id, monitor_id, values)


def update_server_score_pause_reason(
    conn: Connection, *, server_id: int, monitor_id: int, pause_reason: str, now: datetime
) -> int:
    """Q34: why a monitor was paused for this server (after Q5 ``paused``)."""
    values = pause_reason_values(pause_reason, now)
    return _update_assignment(conn, _SET_PAUSE_REASON, server_id, monitor_id, values)


def update_server_score_last_constraint_check(
    conn: Connection, *, server_id: int, monitor_id: int, now: datetime
) -> int:
    """Q35: a paused monitor's constraint was re-checked."""
    values = last_check_values(now)
    return _update_assignment(conn, _TOUCH_LAST_CHECK, server_id, monitor_id, values)


def update_assignments(
    conn: Connection, *, server_id: int, values: Mapping[int, Mapping[str, object]]
) -> int:
    """Several (server, monitor) rows of one server in one UPDATE: ``values`` maps a monitor
    to the columns to set (from the ``*_values`` helpers above).

    Each column becomes ``CASE monitor_id WHEN … THEN … ELSE column END``, so a row gets
    exactly the columns given for it and keeps every other. One statement is atomic: if it
    fails nothing of it was written, and the caller may replay the writes one by one.
    """
    if not values:
        return 0
    ss = server_scores
    columns: dict[str, list[tuple[int, object]]] = {}
    for monitor_id, row in values.items():
        for column, value in row.items():
            columns.setdefault(column, []).append((monitor_id, value))
    assignments = {
        column: case(
            {mid: bindparam(None, value, type_=ss.c[column].type) for mid, value in whens},
            value=ss.c.monitor_id,
            else_=ss.c[column],
        )
        for column, whens in columns.items()
    }
    stmt = (
        update(ss)
        .where(ss.c.server_id == server_id, ss.c.monitor_id.in_(list(values)))
        .values(assignments)
    )
    return conn.execute(stmt).rowcount
