"""Multi-row INSERT statements rendered in one pass on MySQL-family databases.

PyMySQL's ``executemany`` renders every value through a generic, dict-based escape dispatch;
for the scorer's batches of thousands of rows that is most of the client time of a batch. The
values written in bulk are of a few plain types (int, float, naive datetime, str, None), so
they are rendered here directly, exactly as PyMySQL renders them; any other type goes through
PyMySQL's own ``literal``. Strings are always escaped by the connection (which knows the
server's ``NO_BACKSLASH_ESCAPES`` mode). SQLite keeps the driver's ``executemany`` (C code).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert

from ntpmon.db.dialect import is_mysql

MAX_STATEMENT_BYTES = 1_000_000
"""Rows go out in statements of about this size, as PyMySQL's executemany splits them."""

NO_PARAMETERS = {"no_parameters": True}
"""Rendered SQL is sent as is: no ``%`` formatting by the driver."""


class UnrenderableValueError(ValueError):
    """A float MySQL cannot store (inf, nan), refused like PyMySQL refuses it."""


def render_float(value: float) -> str:
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        raise UnrenderableValueError(f"{text} can not be used with MySQL")
    return text if "e" in text else text + "e0"  # a DOUBLE literal, not a DECIMAL one


def render_datetime(value: datetime) -> str:
    """PyMySQL's form: seconds, plus microseconds only when there are any; no time zone."""
    text = value.replace(tzinfo=None).isoformat(" ") if value.tzinfo else value.isoformat(" ")
    return f"'{text}'"


def renderer(literal: Callable[[Any], str]) -> Callable[[Any], str]:
    """A value → SQL literal function; ``literal`` (the driver's) handles str and the rest."""
    fast: dict[type, Callable[[Any], str]] = {
        int: str,
        bool: lambda v: str(int(v)),
        float: render_float,
        datetime: render_datetime,
    }

    def render(value: Any) -> str:
        if value is None:
            return "NULL"
        convert = fast.get(type(value))
        return convert(value) if convert is not None else literal(value)

    return render


def rendered_statements(
    head: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], render: Callable
) -> list[str]:
    """``head`` + ``(v, ...)`` groups, split into statements of at most ~1 MB (pure)."""
    statements: list[str] = []
    groups: list[str] = []
    size = len(head)
    for row in rows:
        group = "(" + ",".join([render(row[c]) for c in columns]) + ")"
        if groups and size + len(group) + 1 > MAX_STATEMENT_BYTES:
            statements.append(head + ",".join(groups))
            groups, size = [], len(head)
        groups.append(group)
        size += len(group) + 1
    if groups:
        statements.append(head + ",".join(groups))
    return statements


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (all with the same keys); returns the number of rows inserted."""
    if not rows:
        return 0
    if not is_mysql(conn):
        return conn.execute(insert(table), list(rows)).rowcount
    quote = conn.dialect.identifier_preparer.quote
    columns = list(rows[0])
    # identifiers quoted by the dialect, every value rendered by the functions above
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
    render = renderer(conn.connection.dbapi_connection.escape)  # type: ignore[union-attr]
    total = 0
    for statement in rendered_statements(head, columns, rows, render):
        total += conn.exec_driver_sql(statement, execution_options=NO_PARAMETERS).rowcount
    return total
