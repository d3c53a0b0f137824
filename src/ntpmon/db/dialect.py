"""The few statements whose SQL differs between MySQL/MariaDB and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import mysql, sqlite

MYSQL_FAMILY = ("mysql", "mariadb")


def is_mysql(conn: Connection) -> bool:
    return conn.dialect.name in MYSQL_FAMILY


def upsert(
    conn: Connection,
    table: Table,
    values: dict[str, Any],
    conflict: Sequence[str],
    update: Sequence[str],
) -> int:
    """Insert, or update ``update`` columns when the unique key ``conflict`` already exists."""
    if is_mysql(conn):
        stmt = mysql.insert(table).values(**values)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    else:
        stmt = sqlite.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(conflict), set_={c: stmt.excluded[c] for c in update}
        )
    return conn.execute(stmt).rowcount


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    conflict: Sequence[str],
    update: Sequence[str],
) -> int:
    """:func:`upsert` for many rows in one statement (all rows with the same keys)."""
    if not rows:
        return 0
    if is_mysql(conn):
        stmt = mysql.insert(table).values(rows)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    else:
        stmt = sqlite.insert(table).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(conflict), set_={c: stmt.excluded[c] for c in update}
        )
    return conn.execute(stmt).rowcount


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]] | Any) -> int:
    """Insert rows (or an INSERT ... SELECT built by the caller), skipping duplicate keys."""
    if is_mysql(conn):
        stmt = mysql.insert(table).prefix_with("IGNORE")
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    if isinstance(rows, list):
        return conn.execute(stmt, rows).rowcount if rows else 0
    return conn.execute(stmt.from_select(rows[0], rows[1])).rowcount
