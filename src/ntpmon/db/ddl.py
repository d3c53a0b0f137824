"""Render and apply the schema: MySQL DDL for schema.sql; create and check live databases."""

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
    """Create the tables of a database that has none of ntpmon's, stamped at the head revision.

    A database that already has some of them is brought to the head revision instead
    (:func:`ntpmon.db.migrate.upgrade_schema`), so this is safe to run on any database.
    """
    from ntpmon.db.migrate import upgrade_schema

    upgrade_schema(engine)


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaMismatchError` naming what is missing or when an upgrade is due,
    so a wrong or outdated database fails at start instead of on its first query."""
    from ntpmon.db.migrate import raise_unknown, schema_revision

    with engine.connect() as conn:
        state = schema_revision(conn)
    if not state.known:
        raise_unknown(state)
    upgrade_due = SchemaMismatchError(
        f"database schema upgrade due ({state.describe()}): stop ntpmon's programs, "
        "run `monitor-api db upgrade`, start them again"
    )
    if state.current is not None and not state.at_head:
        raise upgrade_due  # before the table check: the missing revision may add a table
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
    if not state.at_head:
        raise upgrade_due
