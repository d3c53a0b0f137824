"""Hot statements as driver SQL: a Core statement rendered once to PyMySQL's text.

monitor-api runs a handful of statements per RPC, hundreds of times a second. Executing a Core
statement costs SQLAlchemy a cache-key walk, parameter processing (and the expansion of IN
lists) and a result object with its column metadata per call, which together cost more CPU
than PyMySQL's own work (``exec_driver_sql`` still builds the result object: measured, it kept
half of the overhead). A :class:`HotStatement` keeps the Core statement as the single
definition of the query and renders it once for PyMySQL (``%s`` placeholders, the parameter
names in order); on PyMySQL each call orders its parameters and runs the text on a cursor of
the caller's connection, inside the caller's transaction. A driver error is raised as
SQLAlchemy would raise it (:class:`~sqlalchemy.exc.DBAPIError` with the driver's error as
``orig``, the connection invalidated when it broke), so the transaction retry and the RPC
error mapping see no difference. Any other driver (SQLite) runs the Core statement, which also
converts the values that driver cannot store itself.

Statement events (``before_cursor_execute``) do not fire for driver SQL; count round trips at
the driver instead (``bench/api_service_cpu.py``). Rendered texts are pure functions of the
statement and the IN-list sizes: built at import, or memoised per size; nothing here changes
after it is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_DIALECT = MySQLDialect_pymysql()
DRIVER = "pymysql"
_POSTCOMPILE = "__[POSTCOMPILE_{}]"


@dataclass(frozen=True, slots=True)
class DriverSql:
    """SQL text with positional ``%s`` placeholders and the parameter name of each."""

    text: str
    names: tuple[str, ...]
    constants: tuple[tuple[str, Any], ...]  # values bound in the statement itself
    expanding: tuple[str, ...]  # IN-list parameters (given per call, or constant lists)

    @classmethod
    def render(cls, statement: ClauseElement) -> DriverSql:
        compiled = statement.compile(dialect=_DIALECT)
        names = tuple(compiled.positiontup or ())
        expanding = tuple(
            name for name, bind in compiled.binds.items() if bind.expanding and name in names
        )
        constants = tuple(
            (name, tuple(bind.value) if bind.expanding else bind.value)  # hashable: memoised
            for name, bind in compiled.binds.items()
            if name in names and bind.value is not None
        )
        return cls(compiled.string, names, constants, expanding)

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The constants with the call's named parameters over them."""
        values = dict(self.constants)
        values.update(params)
        return values

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments of the text, from :meth:`values`."""
        if not self.expanding:
            return tuple(values[name] for name in self.names)
        out: list[Any] = []
        for name in self.names:
            if name in self.expanding:
                out.extend(values[name])
            else:
                out.append(values[name])
        return tuple(out)


@lru_cache(maxsize=256)
def _expanded(sql: DriverSql, sizes: tuple[int, ...]) -> DriverSql:
    """``sql`` with each IN list written out for the given number of values."""
    text = sql.text
    for name, size in zip(sql.expanding, sizes, strict=True):
        text = text.replace(_POSTCOMPILE.format(name), ", ".join(["%s"] * size))
    return DriverSql(text, sql.names, sql.constants, sql.expanding)


class HotStatement:
    """A Core statement, run as pre-rendered driver SQL on PyMySQL and as Core elsewhere.

    IN lists (expanding bind parameters) must not be empty: the callers skip empty ones.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self.driver = DriverSql.render(statement)

    def _driver_sql(self, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        sql = self.driver
        values = sql.values(params)
        if sql.expanding:
            sql = _expanded(sql, tuple(len(values[name]) for name in sql.expanding))
        return sql.text, sql.args(values)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Every result row as a tuple in the statement's column order."""
        if conn.dialect.driver != DRIVER:
            return [tuple(row) for row in conn.execute(self.statement, dict(params))]
        cursor = _execute(conn, *self._driver_sql(params))
        try:
            return cursor.fetchall()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run a data-changing statement; the number of rows it matched."""
        if conn.dialect.driver != DRIVER:
            return conn.execute(self.statement, dict(params)).rowcount
        cursor = _execute(conn, *self._driver_sql(params))
        cursor.close()
        return int(cursor.rowcount)


# Values PyMySQL escapes itself before the type's encoder (connection-dependent strings, bytes,
# and sequences): these go through its ``escape``.
_ESCAPED_BY_CONNECTION = frozenset({str, bytes, bytearray, tuple, list, set, frozenset})


def _bind(dbapi_conn: Any, text: str, args: tuple[Any, ...]) -> str:
    """``text`` with ``args`` written in as PyMySQL's ``Cursor.execute`` would write them.

    The same encoders PyMySQL uses, called directly for the plain types (numbers, None,
    datetimes): its own path costs three Python calls per value, and a batch binds ~180. A
    naive datetime (all of ours: UTC without tzinfo) is written by ``isoformat``, the same text
    as PyMySQL's field-by-field ``str.format`` at a third of the cost (~30 per batch pair).
    """
    encoders = dbapi_conn.encoders
    escape = dbapi_conn.escape
    literals = []
    for value in args:
        kind = type(value)
        if kind is datetime and value.tzinfo is None:
            literals.append(f"'{value.isoformat(' ')}'")
            continue
        encoder = None if kind in _ESCAPED_BY_CONNECTION else encoders.get(kind)
        literals.append(escape(value) if encoder is None else encoder(value, encoders))
    return text % tuple(literals)


def _execute(conn: Connection, text: str, args: tuple[Any, ...]) -> Any:
    """Run ``text`` on a new cursor of ``conn``'s driver connection (its open transaction)."""
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(_bind(dbapi_conn, text, args))
    except conn.dialect.loaded_dbapi.Error as exc:
        cursor.close()
        raise _as_sqlalchemy_error(conn, exc, text, args) from exc
    return cursor


def _as_sqlalchemy_error(
    conn: Connection, exc: Exception, text: str, args: tuple[Any, ...]
) -> DBAPIError:
    """What ``Connection.execute`` raises for ``exc``; a broken connection is invalidated."""
    dialect = conn.dialect
    broken = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if broken:
        conn.invalidate(exc)
    return DBAPIError.instance(
        text,
        args,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=broken,
        dialect=dialect,
    )


class RowsInsert:
    """A multi-row INSERT: on PyMySQL one ``VALUES (..), (..)`` text with a row per value set,
    elsewhere Core's executemany.

    The text for n rows is the one-row text with its value group repeated: a string join per
    call, no statement built per batch size.
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.statement = insert(table)
        one = DriverSql.render(insert(table).values({c: bindparam(c) for c in columns}))
        head, sep, group = one.text.partition(" VALUES ")
        if not sep or sorted(one.names) != sorted(columns):
            raise ValueError(f"unexpected INSERT rendering: {one.text}")
        self.columns = one.names  # in the rendered (table) order
        self._head = head + sep
        self._group = group

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows`` (each a mapping with every column) in one statement."""
        if not rows:
            return 0
        if conn.dialect.driver != DRIVER:
            return conn.execute(self.statement, [dict(r) for r in rows]).rowcount
        text = self._head + ", ".join([self._group] * len(rows))
        args = tuple(row[c] for row in rows for c in self.columns)
        cursor = _execute(conn, text, args)
        cursor.close()
        return int(cursor.rowcount)


ROWS_PER_STATEMENT = 2000
"""Rows per multi-row INSERT in :func:`insert_rows`: a few hundred KB of text, far inside
``max_allowed_packet`` (16 MB on MariaDB 10.11, 64 MB on MySQL 8)."""


@lru_cache(maxsize=32)
def _rows_insert(table: Table, columns: tuple[str, ...]) -> RowsInsert:
    return RowsInsert(table, columns)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (mappings with the same keys) in multi-row statements; the row count.

    The scorer writes thousands of rows per batch: PyMySQL's ``executemany`` would escape
    every value through its generic dispatch; here they are bound as in :func:`_bind`.
    Values PyMySQL cannot write (inf, nan) fail the statement before anything is sent.
    """
    if not rows:
        return 0
    statement = _rows_insert(table, tuple(rows[0]))
    return sum(
        statement.run(conn, rows[start : start + ROWS_PER_STATEMENT])
        for start in range(0, len(rows), ROWS_PER_STATEMENT)
    )
