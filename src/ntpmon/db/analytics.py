"""Relational side of the analytics exporter and of retention (docs/operations.md).

The exporter copies rows in id order and remembers the highest copied id per stream in
``export_cursors``; retention deletes the oldest ``log_scores`` rows by primary-key range, never
at or above the lowest cursor (the scorers' and, when the exporter runs, the exporter's). Every
statement here touches a primary-key range, so none holds locks for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.sql import Select

from ntpmon.db.dialect import MYSQL_FAMILY
from ntpmon.db.driversql import HotStatement
from ntpmon.db.tables import export_cursors, log_scores, scorer_status


def _by_primary_key(query: Select, table: Table) -> Select:
    """``USE INDEX (PRIMARY)``: an id range is always read through the primary key."""
    for name in MYSQL_FAMILY:
        query = query.with_hint(table, "USE INDEX (PRIMARY)", dialect_name=name)
    return query


def get_export_cursor(conn: Connection, stream: str) -> int | None:
    """The highest id of ``stream`` known to be in ClickHouse; None: never exported."""
    return conn.execute(
        select(export_cursors.c.last_id).where(export_cursors.c.stream == stream)
    ).scalar_one_or_none()


def create_export_cursor(conn: Connection, stream: str, last_id: int = 0) -> int:
    """The cursor row of a stream exported for the first time (returns its value)."""
    found = get_export_cursor(conn, stream)
    if found is not None:
        return int(found)
    conn.execute(insert(export_cursors).values(stream=stream, last_id=last_id))
    return last_id


def advance_export_cursor(conn: Connection, stream: str, *, old: int, new: int) -> bool:
    """Move the cursor from ``old`` to ``new``; False when another exporter moved it first.

    A compare-and-set instead of a lock held across the ClickHouse insert: a second exporter
    may copy the same rows again, which ClickHouse's ReplacingMergeTree folds by id.
    """
    result = conn.execute(
        update(export_cursors)
        .where(export_cursors.c.stream == stream, export_cursors.c.last_id == old)
        .values(last_id=new)
    )
    return result.rowcount == 1


@lru_cache(maxsize=16)
def _rows_after(table: Table, columns: tuple[str, ...]) -> HotStatement:
    return HotStatement(
        _by_primary_key(
            select(*(table.c[name] for name in columns))
            .where(table.c.id > bindparam("after_id"))
            .order_by(table.c.id)
            .limit(bindparam("limit")),
            table,
        )
    )


def rows_after(
    conn: Connection, table: Table, columns: Sequence[str], *, after_id: int, limit: int
) -> list[tuple[Any, ...]]:
    """The next ``limit`` rows of ``table`` with ``id > after_id``, in id order.

    Driver SQL on PyMySQL (``db.driversql``): SQLAlchemy's result rows cost a quarter of the
    exporter's time per row, and the exporter reads tens of thousands of rows a second.
    """
    statement = _rows_after(table, tuple(columns))
    return list(statement.rows(conn, {"after_id": after_id, "limit": int(limit)}))


def backlog(conn: Connection, table: Table, *, after_id: int) -> tuple[int, datetime | None]:
    """Rows with ``id > after_id`` and the ``ts`` of the first of them (None when none).

    The exporter's lag: how many rows ClickHouse lacks and since when.
    """
    count = conn.execute(
        _by_primary_key(select(func.count()).where(table.c.id > after_id), table)
    ).scalar_one()
    first = conn.execute(
        _by_primary_key(
            select(table.c.ts).where(table.c.id > after_id).order_by(table.c.id).limit(1), table
        )
    ).scalar_one_or_none()
    return int(count), first


def oldest_log_score(conn: Connection) -> tuple[int, datetime] | None:
    """The lowest-id ``log_scores`` row (id, ts): where MySQL's window begins."""
    row = conn.execute(
        _by_primary_key(
            select(log_scores.c.id, log_scores.c.ts).order_by(log_scores.c.id).limit(1),
            log_scores,
        )
    ).first()
    return None if row is None else (int(row.id), row.ts)


def scorer_cursor_floor(conn: Connection) -> int | None:
    """The lowest ``scorer_status.log_score_id`` of any scorer, active or not; None: no scorer.

    Rows at or above it may still be unscored. The row it names is kept too: the cursor is a
    foreign key into ``log_scores``.
    """
    return conn.execute(select(func.min(scorer_status.c.log_score_id))).scalar_one_or_none()


def log_score_ids_and_ts(
    conn: Connection, *, after_id: int, below_id: int, limit: int
) -> list[tuple[int, datetime]]:
    """Up to ``limit`` (id, ts) of ``after_id < id < below_id`` in id order (a key range)."""
    query = _by_primary_key(
        select(log_scores.c.id, log_scores.c.ts)
        .where(log_scores.c.id > after_id, log_scores.c.id < below_id)
        .order_by(log_scores.c.id)
        .limit(int(limit)),
        log_scores,
    )
    return [(int(i), ts) for i, ts in conn.execute(query)]


def delete_log_scores_between(
    conn: Connection, *, first_id: int, last_id: int, before: datetime
) -> int:
    """Delete ``first_id <= id <= last_id`` with ``ts < before``: one primary-key range.

    The ``ts`` test keeps a row that committed inside the range after it was read (it is new).
    """
    return conn.execute(
        delete(log_scores).where(
            log_scores.c.id >= first_id, log_scores.c.id <= last_id, log_scores.c.ts < before
        )
    ).rowcount
