"""Queries of monitor-scorer (spec/database.md §4.3, Q16–Q26) plus the batch helpers it needs.

Q16–Q26 are here one function each, as upstream names them. The runner does not call the
row-at-a-time ones (Q2/Q23/Q24/Q3/Q25) per row: it uses the set-based helpers below them
(``*_for_servers``, ``load_recent_window``, ``update_*_bulk``), which give the same final rows
with a few statements per batch. Tests check the two against each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ColumnElement, Select

from ntpmon.common.clock import db_seconds
from ntpmon.db.dialect import MYSQL_FAMILY, is_mysql, upsert
from ntpmon.db.driversql import insert_rows
from ntpmon.db.models import LogScore, MonitorType, ServerScoreStatus, from_row
from ntpmon.db.tables import log_scores, monitors, scorer_status, server_scores, servers
from ntpmon.db.types import datetime0, double

ID_WINDOW = 10_000
"""Q21 reads ids ``cursor+1 … cursor+9999`` (a primary-key range scan)."""

NEAR_WINDOW_S = 600
"""First look for each monitor's latest row this far back (see :func:`load_recent_window`)."""

SERVER_CHUNK = 2500
"""Servers per ``IN (...)`` list, so statements stay well inside packet and parser limits."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScorerRow:
    """Q16: one configured scorer with its durable cursor."""

    id: int
    status_id: int
    status: str
    log_score_id: int
    hostname: str


@dataclasses.dataclass(frozen=True, slots=True)
class ScorerStatusRow:
    """Q17: one ``scorer_status`` row with the scorer's name."""

    id: int
    scorer_id: int
    log_score_id: int
    modified_on: datetime
    hostname: str


def chunks(items: Sequence[int], size: int = SERVER_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _primary_key_scan(query: Select) -> Select:
    """``USE INDEX (PRIMARY)`` on log_scores for MySQL-family databases; nothing elsewhere."""
    for name in MYSQL_FAMILY:
        query = query.with_hint(log_scores, "USE INDEX (PRIMARY)", dialect_name=name)
    return query


def get_scorers(conn: Connection) -> list[ScorerRow]:
    """Q16: active scorer monitors that have a cursor row."""
    query = select(
        monitors.c.id,
        scorer_status.c.id.label("status_id"),
        monitors.c.status,
        scorer_status.c.log_score_id,
        monitors.c.hostname,
    ).where(
        monitors.c.type == str(MonitorType.SCORE),
        monitors.c.status == "active",
        monitors.c.id == scorer_status.c.scorer_id,
    )
    return [from_row(ScorerRow, r) for r in conn.execute(query)]


def get_scorer_status(conn: Connection) -> list[ScorerStatusRow]:
    """Q17: every cursor row of a scorer monitor (for ``db --scorer-status``)."""
    query = (
        select(scorer_status, monitors.c.hostname)
        .where(
            monitors.c.type == str(MonitorType.SCORE), monitors.c.id == scorer_status.c.scorer_id
        )
        .order_by(scorer_status.c.id)
    )
    return [from_row(ScorerStatusRow, r) for r in conn.execute(query)]


def get_min_log_score_id(conn: Connection) -> int | None:
    """Q18: the oldest log_scores id, where a new scorer's cursor starts."""
    return conn.execute(
        select(log_scores.c.id).order_by(log_scores.c.id).limit(1)
    ).scalar_one_or_none()


def insert_scorer(conn: Connection, *, hostname: str, now: datetime) -> int:
    """Q19: a scorer pseudo-monitor; returns its id."""
    result = conn.execute(
        insert(monitors).values(
            type=str(MonitorType.SCORE),
            user_id=None,
            account_id=None,
            hostname=hostname,
            location="",
            ip=None,
            ip_version=None,
            tls_name=f"{hostname}.scores.ntp.dev",
            api_key=None,
            status="active",
            config="",
            client_version="",
            created_on=db_seconds(now),
        )
    )
    return int(result.inserted_primary_key[0])


def insert_scorer_status(
    conn: Connection, *, scorer_id: int, log_score_id: int, now: datetime
) -> int:
    """Q20: the cursor row of a new scorer."""
    return conn.execute(
        insert(scorer_status).values(
            scorer_id=scorer_id, log_score_id=log_score_id, modified_on=db_seconds(now)
        )
    ).rowcount


def lock_scorer_status(conn: Connection, *, scorer_id: int) -> int | None:
    """The cursor, read as the batch transaction's first statement with a row lock.

    ``FOR UPDATE`` makes a second scorer process wait here until the first commits, so no
    input row is ever consumed twice (spec/scorer.md §8). SQLite has no row locks; its
    ``BEGIN IMMEDIATE`` already gives the transaction the database's single write lock.
    """
    query = select(scorer_status.c.log_score_id).where(scorer_status.c.scorer_id == scorer_id)
    if is_mysql(conn):
        query = query.with_for_update()
    return conn.execute(query.order_by(scorer_status.c.id.desc()).limit(1)).scalar_one_or_none()


def get_agent_monitor_ids(conn: Connection) -> list[int]:
    """Ids of every agent monitor (``type='monitor'``), whatever its status.

    Read once per batch, inside the batch transaction, and passed to the batch queries as a
    literal list: the same rows as upstream's join with ``monitors`` (same snapshot), with a
    query plan that cannot flip to scanning ``log_scores`` by monitor.
    """
    query = select(monitors.c.id).where(monitors.c.type == str(MonitorType.MONITOR))
    return sorted(conn.execute(query).scalars())


Agents = Sequence[int] | None


def _from_agent_monitor(column: ColumnElement[Any], agents: Agents = None) -> ColumnElement[bool]:
    """``column IN (agent monitor ids)``: rows of scorers and rows without a monitor are out.

    Equivalent to upstream's join with ``monitors`` (``id`` is its primary key). ``agents``
    is the id list of :func:`get_agent_monitor_ids`; without it a subquery is used.
    """
    if agents is not None:
        return column.in_(list(agents))
    agents_query = select(monitors.c.id).where(monitors.c.type == str(MonitorType.MONITOR))
    for name in MYSQL_FAMILY:  # probe by primary key, not the (type, status) index
        agents_query = agents_query.with_hint(monitors, "USE INDEX (PRIMARY)", dialect_name=name)
    return column.in_(agents_query.scalar_subquery())


def _log_scores(result: Iterable[Any]) -> list[LogScore]:
    """Rows of ``select(log_scores)`` (table column order = dataclass field order)."""
    return [LogScore(*row) for row in result]


def _q21(columns: Sequence[Any], log_score_id: int, limit: int, agents: Agents) -> Select:
    """Q21's shape: monitor rows after the cursor, inside the 10,000-id window, in id order."""
    c = log_scores.c
    return _primary_key_scan(
        select(*columns)
        .where(
            _from_agent_monitor(c.monitor_id, agents),
            c.id > log_score_id,
            c.id < log_score_id + ID_WINDOW,
        )
        .order_by(c.id)
        .limit(int(limit))
    )


def get_scorer_log_scores(
    conn: Connection, *, log_score_id: int, limit: int, agents: Agents = None
) -> list[LogScore]:
    """Q21: the next monitor rows after the cursor, inside the 10,000-id window."""
    return _log_scores(conn.execute(_q21(log_scores.c, log_score_id, limit, agents)))


def get_scorer_log_score_ids(
    conn: Connection, *, log_score_id: int, limit: int, agents: Agents = None
) -> list[int]:
    """Q21's row ids only (the rows themselves are then taken from a cache)."""
    query = _q21([log_scores.c.id], log_score_id, limit, agents)
    return list(conn.execute(query).scalars())


def get_scorer_next_log_score_id(
    conn: Connection, *, log_score_id: int, agents: Agents = None
) -> int | None:
    """Q22: the first monitor row beyond the cursor, however far (used after an id gap)."""
    query = _primary_key_scan(
        select(log_scores.c.id)
        .where(_from_agent_monitor(log_scores.c.monitor_id, agents), log_scores.c.id > log_score_id)
        .order_by(log_scores.c.id)
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def _server_ts_scan(query: Select, table: Any) -> Select:
    """``FORCE INDEX (log_scores_server_ts_idx)``: a few servers over a short time range."""
    for name in MYSQL_FAMILY:
        query = query.with_hint(table, "FORCE INDEX (log_scores_server_ts_idx)", dialect_name=name)
    return query


def _latest_per_monitor(
    server_ids: Sequence[int],
    statuses: Sequence[str],
    lo: datetime,
    hi: datetime,
    *,
    upper: str,
) -> Select:
    """``(server, monitor, MAX(ts))`` over monitor rows whose assignment status qualifies."""
    ls2 = log_scores.alias("ls2")
    ss = server_scores.alias("ss")
    ts_upper = ls2.c.ts <= hi if upper == "le" else ls2.c.ts < hi
    query = (
        select(ls2.c.server_id, ls2.c.monitor_id, func.max(ls2.c.ts).label("sts"))
        .select_from(
            ls2.join(
                ss, and_(ss.c.monitor_id == ls2.c.monitor_id, ss.c.server_id == ls2.c.server_id)
            )
        )
        .where(
            _from_agent_monitor(ls2.c.monitor_id),
            ls2.c.server_id.in_(list(server_ids)),
            ss.c.status.in_(list(statuses)),
            ts_upper,
            ls2.c.ts >= lo,
        )
        .group_by(ls2.c.server_id, ls2.c.monitor_id)
    )
    return query


def _rows_at(g: Select, server_ids: Sequence[int], lo: datetime, hi: datetime) -> Select:
    """The rows at each group's latest ts; the outer range lets the (server_id, ts) index work."""
    sub = g.subquery("g")
    return _server_ts_scan(
        select(log_scores)
        .join(
            sub,
            and_(
                sub.c.server_id == log_scores.c.server_id,
                sub.c.monitor_id == log_scores.c.monitor_id,
                sub.c.sts == log_scores.c.ts,
            ),
        )
        .where(
            log_scores.c.server_id.in_(list(server_ids)),
            log_scores.c.ts >= lo,
            log_scores.c.ts <= hi,
        ),
        log_scores,
    )


def get_scorer_recent_scores(
    conn: Connection,
    *,
    server_id: int,
    ts: datetime,
    statuses: Sequence[str],
    lookback_s: int,
) -> list[LogScore]:
    """Q23: per qualifying monitor, its latest row(s) for the server in ``[ts-lookback, ts]``.

    Ordered by ``ts, id`` (SQ20). The lower bound is computed here rather than with
    ``DATE_SUB`` so the query is the same on SQLite.
    """
    lo = ts - timedelta(seconds=lookback_s)
    query = _rows_at(
        _latest_per_monitor([server_id], statuses, lo, ts, upper="le"), [server_id], lo, ts
    ).order_by(log_scores.c.ts, log_scores.c.id)
    return [from_row(LogScore, r) for r in conn.execute(query)]


def load_recent_window(
    conn: Connection,
    *,
    server_ids: Sequence[int],
    statuses: Sequence[str],
    first_ts: datetime,
    last_ts: datetime,
    lookback_s: int,
    agents: Sequence[int],
    known: Mapping[int, LogScore] | None = None,
) -> list[LogScore]:
    """What Q23 can return for any ``ts`` in ``[first_ts, last_ts]`` on these servers.

    That is every qualifying row with ``first_ts <= ts <= last_ts`` plus, per monitor, the
    row(s) at its latest ``ts`` in ``[first_ts - lookback, first_ts)``: the latest row at or
    before any such ``ts`` is one of these. A few statements instead of one query per row.

    The qualifying (server, monitor) pairs are read once; which rows are needed is decided in
    memory from row keys (id, server, monitor, ts) read off the ``(server_id, ts, …)`` index,
    index-only once that index holds ``monitor_id``; only the needed rows are then read in
    full, by primary key, except those in ``known`` (rows read before: log_scores rows never
    change). The keys come from the last ``NEAR_WINDOW_S`` first (monitors report
    every few minutes); only servers with a qualifying monitor not found there are searched
    over the rest of the look-back. No GROUP BY, no join, no derived table.
    """
    pairs = get_assignment_pairs(conn, server_ids=server_ids, statuses=statuses, agents=agents)
    if not pairs:
        return []
    lo = first_ts - timedelta(seconds=lookback_s)
    near_lo = max(lo, first_ts - timedelta(seconds=NEAR_WINDOW_S))
    servers = sorted({server for server, _ in pairs})
    keys = _row_keys(conn, servers, pairs, lo=near_lo, hi=last_ts, upper="le")
    wanted = [k.id for k in keys if k.ts >= first_ts]
    before = latest_keys(k for k in keys if k.ts < first_ts)
    missing = sorted({server for server, monitor in pairs if (server, monitor) not in before})
    if missing and near_lo > lo:
        far = _row_keys(conn, missing, pairs, lo=lo, hi=near_lo, upper="lt")
        before.update(latest_keys(k for k in far if (k.server_id, k.monitor_id) not in before))
    wanted.extend(i for ids in before.values() for i in ids)
    return get_log_scores_by_id(conn, wanted, known)


class RowKey(NamedTuple):
    """The index columns of one log_scores row: enough to decide whether it is needed.

    A tuple: tens of thousands are made per batch, at a third of a frozen dataclass's cost.
    """

    id: int
    server_id: int
    monitor_id: int
    ts: datetime


def _packed(
    conn: Connection,
    group: ColumnElement[int],
    counted: ColumnElement[Any],
    entry: Any,
    query: Select,
) -> tuple[dict[int, list[str]], list[int]]:
    """Run ``query`` grouped by ``group`` with ``entry`` texts packed by ``GROUP_CONCAT``.

    Thousands of small rows cost a few hundred result rows and C-speed string splits instead
    of one driver row each. Returns the entries per group and the groups whose packed text
    does not hold ``COUNT(counted)`` entries (cut short by a length limit): callers read
    those row by row. Entries must not contain a comma.
    """
    packed_query = query.with_only_columns(
        group, func.count(counted), func.group_concat(entry)
    ).group_by(group)
    entries: dict[int, list[str]] = {}
    short: list[int] = []
    for key, count, text in conn.execute(packed_query):
        items = text.split(",") if text else []
        if len(items) == count:
            entries[key] = items
        else:
            short.append(key)
    return entries, short


def _text(column: ColumnElement[Any]) -> ColumnElement[str]:
    return cast(column, String)


def _key_scan(
    server_ids: Sequence[int], pairs: set[tuple[int, int]], lo: datetime, hi: datetime, upper: str
) -> Select:
    """The rows of :func:`_row_keys`: these servers, ``lo <= ts <= hi`` (``< hi`` for ``lt``),
    monitors of a qualifying pair only.

    The monitor filter works on the index entries (``monitor_id`` is in the index), so the
    scorers' own output rows, as many as the input rows in the same time range, are dropped
    by the database instead of being packed, sent and split.
    """
    c = log_scores.c
    ts_upper = c.ts <= hi if upper == "le" else c.ts < hi
    monitors = sorted({monitor for _, monitor in pairs})
    return _server_ts_scan(
        select(c.id, c.server_id, c.monitor_id, c.ts).where(
            c.server_id.in_(list(server_ids)), c.ts >= lo, ts_upper, c.monitor_id.in_(monitors)
        ),
        log_scores,
    )


def _row_keys(
    conn: Connection,
    server_ids: Sequence[int],
    pairs: set[tuple[int, int]],
    *,
    lo: datetime,
    hi: datetime,
    upper: str,
) -> list[RowKey]:
    """Keys of the rows of qualifying pairs with ``lo <= ts <= hi`` (``< hi`` for ``lt``).

    Read packed per server (``id/monitor/ts`` entries, see :func:`_packed`).
    """
    if not pairs:
        return []
    c = log_scores.c
    entry = _text(c.id).concat("/").concat(_text(c.monitor_id)).concat("/").concat(_text(c.ts))
    query = _key_scan(server_ids, pairs, lo, hi, upper)
    packed, short = _packed(conn, c.server_id, c.monitor_id, entry, query)
    keys: list[RowKey] = []
    times: dict[str, datetime] = {}
    for server_id, items in packed.items():
        for item in items:
            row_id, monitor, text = item.split("/")
            monitor_id = int(monitor)
            if (server_id, monitor_id) in pairs:
                ts = times.get(text)
                if ts is None:
                    ts = times[text] = datetime.fromisoformat(text)
                keys.append(RowKey(int(row_id), server_id, monitor_id, ts))
    if short:
        keys.extend(_row_keys_plain(conn, short, pairs, lo=lo, hi=hi, upper=upper))
    return keys


def _row_keys_plain(
    conn: Connection,
    server_ids: Sequence[int],
    pairs: set[tuple[int, int]],
    *,
    lo: datetime,
    hi: datetime,
    upper: str,
) -> list[RowKey]:
    """:func:`_row_keys` one result row per key (the fallback for over-long packed text)."""
    if not pairs:
        return []
    query = _key_scan(server_ids, pairs, lo, hi, upper)
    return [RowKey(*r) for r in conn.execute(query) if (r[1], r[2]) in pairs]


def latest_keys(keys: Iterable[RowKey]) -> dict[tuple[int, int], list[int]]:
    """Per (server, monitor): the ids of its row(s) at its greatest ts (ties all kept)."""
    latest: dict[tuple[int, int], tuple[datetime, list[int]]] = {}
    for key in keys:
        pair = (key.server_id, key.monitor_id)
        seen = latest.get(pair)
        if seen is None or key.ts > seen[0]:
            latest[pair] = (key.ts, [key.id])
        elif key.ts == seen[0]:
            seen[1].append(key.id)
    return {pair: ids for pair, (_, ids) in latest.items()}


ID_CHUNK = 5000
"""Ids per ``IN (...)`` list when reading rows by primary key."""


def get_log_scores_by_id(
    conn: Connection, ids: Iterable[int], known: Mapping[int, LogScore] | None = None
) -> list[LogScore]:
    """Whole log_scores rows by primary key (duplicates in ``ids`` read once).

    Rows found in ``known`` are taken from there and not read.
    """
    unique = set(ids)
    rows: list[LogScore] = []
    if known:
        missing: set[int] = set()
        for i in unique:
            row = known.get(i)  # one lookup: another thread may drop an entry at any time
            if row is None:
                missing.add(i)
            else:
                rows.append(row)
        unique = missing
    for part in chunks(sorted(unique), ID_CHUNK):
        rows.extend(
            _log_scores(
                conn.execute(_primary_key_scan(select(log_scores).where(log_scores.c.id.in_(part))))
            )
        )
    return rows


def get_assignment_pairs(
    conn: Connection, *, server_ids: Sequence[int], statuses: Sequence[str], agents: Sequence[int]
) -> set[tuple[int, int]]:
    """(server, agent monitor) pairs whose ``server_scores`` status is one of ``statuses``.

    Read packed per server (see :func:`_packed`); servers cut short are read row by row.
    The agent filter is applied here, not in SQL: ``server_id IN (…) AND monitor_id IN (…)``
    makes the optimizer build one range per (server, monitor) combination on the
    ``(server_id, monitor_id)`` index, several times slower than the rows it saves.
    """
    ss = server_scores.c
    query = select(ss.server_id, ss.monitor_id).where(
        ss.server_id.in_(list(server_ids)), ss.status.in_(list(statuses))
    )
    packed, short = _packed(conn, ss.server_id, ss.monitor_id, _text(ss.monitor_id), query)
    agent_ids = frozenset(agents)
    pairs = {
        (server, monitor)
        for server, monitors in packed.items()
        for monitor in map(int, monitors)
        if monitor in agent_ids
    }
    if short:
        rows = conn.execute(query.where(ss.server_id.in_(short)))
        pairs.update((r.server_id, r.monitor_id) for r in rows if r.monitor_id in agent_ids)
    return pairs


@dataclasses.dataclass(frozen=True, slots=True)
class OwnScore:
    """The columns of a scorer's own ``server_scores`` row that scoring needs."""

    id: int
    server_id: int
    score_raw: float
    status: str


def get_server_scores_for_servers(
    conn: Connection, *, monitor_id: int, server_ids: Iterable[int]
) -> dict[int, OwnScore]:
    """Q2 for many servers at once: the monitor's rows keyed by server id."""
    out: dict[int, OwnScore] = {}
    ss = server_scores.c
    for part in chunks(sorted(set(server_ids))):
        query = select(ss.id, ss.server_id, ss.score_raw, ss.status).where(
            ss.monitor_id == monitor_id, ss.server_id.in_(list(part))
        )
        for row in conn.execute(query):
            out[row.server_id] = OwnScore(*row)
    return out


def insert_server_score(
    conn: Connection, *, monitor_id: int, server_id: int, score_raw: float, created_on: datetime
) -> int:
    """Q24: a scorer's row for a server it has not scored yet (status stays ``candidate``)."""
    return upsert(
        conn,
        server_scores,
        {
            "monitor_id": monitor_id,
            "server_id": server_id,
            "score_raw": score_raw,
            "created_on": db_seconds(created_on),
        },
        conflict=["server_id", "monitor_id"],
        update=["score_raw"],
    )


def insert_server_scores(
    conn: Connection,
    *,
    monitor_id: int,
    server_ids: Iterable[int],
    score_raw: float,
    created_on: datetime,
) -> int:
    """Q24 for many servers as one multi-row statement; returns how many were asked for."""
    ids = sorted(set(server_ids))
    if not ids:
        return 0
    if is_mysql(conn):
        stmt = mysql.insert(server_scores)
        stmt = stmt.on_duplicate_key_update(score_raw=stmt.inserted.score_raw)
    else:
        stmt = sqlite.insert(server_scores)
        stmt = stmt.on_conflict_do_update(
            index_elements=["server_id", "monitor_id"],
            set_={"score_raw": stmt.excluded.score_raw},
        )
    created = db_seconds(created_on)
    conn.execute(
        stmt,
        [
            {
                "monitor_id": monitor_id,
                "server_id": server_id,
                "score_raw": score_raw,
                "created_on": created,
            }
            for server_id in ids
        ],
    )
    return len(ids)


def activate_server_scores(conn: Connection, *, monitor_id: int, server_ids: Iterable[int]) -> int:
    """Q5 (status ``active``) for many servers: the scorer's own rows are always active."""
    changed = 0
    for part in chunks(sorted(set(server_ids))):
        changed += conn.execute(
            update(server_scores)
            .where(
                server_scores.c.monitor_id == monitor_id,
                server_scores.c.server_id.in_(list(part)),
            )
            .values(status=str(ServerScoreStatus.ACTIVE))
        ).rowcount
    return changed


def update_server(conn: Connection, *, id: int, score_ts: datetime, score_raw: float) -> int:
    """Q25: the public score of a server; forward-only (an older ts never overwrites)."""
    ts = db_seconds(score_ts)
    return conn.execute(
        update(servers)
        .where(servers.c.id == id, or_(servers.c.score_ts < ts, servers.c.score_ts.is_(None)))
        .values(score_ts=ts, score_raw=score_raw)
    ).rowcount


_staging = MetaData()
score_updates = Table(
    "scorer_score_updates",
    _staging,
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("score_ts", datetime0()),
    Column("score_raw", double()),
    prefixes=["TEMPORARY"],
)
"""A per-connection temporary table: one multi-row insert, then one joined UPDATE.

``CREATE TEMPORARY TABLE`` does not end a MySQL/MariaDB transaction, and the table lives
only as long as the pooled connection (hence ``IF NOT EXISTS`` and a DELETE before use).
"""


def _stage(conn: Connection, values: dict[int, tuple[datetime, float]]) -> None:
    conn.execute(CreateTable(score_updates, if_not_exists=True))
    conn.execute(delete(score_updates))
    insert_rows(
        conn,
        score_updates,
        [
            {"id": i, "score_ts": db_seconds(ts), "score_raw": raw}
            for i, (ts, raw) in values.items()
        ],
    )


def update_server_scores_bulk(conn: Connection, values: dict[int, tuple[datetime, float]]) -> int:
    """Q3 for many rows: ``{server_scores.id: (score_ts, score_raw)}`` in one joined UPDATE."""
    if not values:
        return 0
    _stage(conn, values)
    return conn.execute(
        update(server_scores)
        .where(server_scores.c.id == score_updates.c.id)
        .values(score_ts=score_updates.c.score_ts, score_raw=score_updates.c.score_raw)
    ).rowcount


def update_servers_bulk(conn: Connection, values: dict[int, tuple[datetime, float]]) -> int:
    """Q25 for many servers: ``{server id: (score_ts, score_raw)}`` with the same forward guard.

    Callers pass, per server, the first row with the greatest ts of the batch: Q25 applied
    row by row in batch order leaves exactly that row's values (or nothing).
    """
    if not values:
        return 0
    _stage(conn, values)
    return conn.execute(
        update(servers)
        .where(
            servers.c.id == score_updates.c.id,
            or_(servers.c.score_ts < score_updates.c.score_ts, servers.c.score_ts.is_(None)),
        )
        .values(score_ts=score_updates.c.score_ts, score_raw=score_updates.c.score_raw)
    ).rowcount


def update_scorer_status(conn: Connection, *, scorer_id: int, log_score_id: int) -> int:
    """Q26: advance the cursor (the last statement of every non-empty batch)."""
    return conn.execute(
        update(scorer_status)
        .where(scorer_status.c.scorer_id == scorer_id)
        .values(log_score_id=log_score_id)
    ).rowcount
