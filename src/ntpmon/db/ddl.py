"""Render and apply the schema: MySQL DDL for schema.sql, create_all for live databases."""

from __future__ import annotations

from sqlalchemy import Engine, Index, Table, inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import CreateTable

from ntpmon.common.errors import NtpmonError
from ntpmon.db.tables import metadata


class SchemaMismatchError(NtpmonError):
    """The database's tables do not match what this version of ntpmon expects."""


def _index_line(index: Index, quote: object) -> str:
    columns = ", ".join(quote(c.name) for c in index.columns)  # type: ignore[operator]
    kind = "UNIQUE KEY" if index.unique else "KEY"
    return f"  {kind} {quote(index.name)} ({columns})"  # type: ignore[operator]


def _create_table_mysql(table: Table) -> str:
    dialect = mysql.dialect()
    sql = str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip()
    quote = dialect.identifier_preparer.quote
    indexes = sorted(table.indexes, key=lambda i: str(i.name))
    if indexes:
        head, tail = sql.rsplit("\n)", 1)
        sql = head + ",\n" + ",\n".join(_index_line(i, quote) for i in indexes) + "\n)" + tail
    lines = sql.replace("\t", "  ").splitlines()
    return "\n".join(line.rstrip() for line in lines) + ";\n"


def mysql_ddl() -> str:
    """The whole owned schema as MySQL 8 / MariaDB DDL, loadable into an empty database."""
    body = "\n".join(_create_table_mysql(table) for table in metadata.sorted_tables)
    return f"SET FOREIGN_KEY_CHECKS = 0;\n\n{body}\nSET FOREIGN_KEY_CHECKS = 1;\n"


def create_schema(engine: Engine) -> None:
    """Create every missing table (and its indexes); existing tables are left untouched."""
    metadata.create_all(engine, checkfirst=True)


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaMismatchError` naming what is missing, so a wrong database fails."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    problems: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            problems.append(f"table {table.name} lacks columns {', '.join(missing)}")
    if problems:
        raise SchemaMismatchError(
            "database schema does not match ntpmon's: "
            + "; ".join(problems)
            + " (run `monitor-api db init` to create the tables)"
        )
