"""Building blocks the revisions share: frozen SQL, and index changes that may already be done.

A database made before the revisions existed may already have what a revision adds, so the
revisions up to that point check before they change anything.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import op
from sqlalchemy import inspect

from ntpmon.db.dialect import MYSQL_FAMILY
from ntpmon.db.tables import metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare only ntpmon's own tables: a shared database (upstream's) has others."""
    if type_ == "table":
        return name in metadata.tables
    return True


def compare_server_default(  # noqa: PLR0917 - Alembic's callback signature
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic reports ``server_default=""`` as changed against the reflected ``''`` (SQLite:
    ``('')``); it is not.

    Everything else is left to Alembic's own comparison (``None``).
    """
    default = metadata_column.server_default
    if getattr(default, "arg", None) == "" and inspected_default in ("''", "('')"):
        return False
    return None


def _statements(sql: str) -> list[str]:
    """Split a DDL file at ``;`` line ends, dropping ``--`` comment lines."""
    bodies = (
        "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--"))
        for chunk in sql.split(";\n")
    )
    return [body.strip() for body in bodies if body.strip()]


def run_frozen_sql(name: str) -> None:
    """Run ``<name>/<dialect>.sql`` of this package (``mysql`` for MySQL and MariaDB)."""
    dialect = op.get_bind().dialect.name
    flavour = "mysql" if dialect in MYSQL_FAMILY else dialect
    sql = resources.files(__package__).joinpath(name, f"{flavour}.sql").read_text()
    for statement in _statements(sql):
        op.get_bind().exec_driver_sql(statement)


def index_columns(table: str, name: str) -> list[str] | None:
    """The columns of index ``name`` on ``table`` as the database has it, or None."""
    for index in inspect(op.get_bind()).get_indexes(table):
        if index["name"] == name:
            return [str(c) for c in index["column_names"]]
    return None


def ensure_index(table: str, name: str, columns: list[str]) -> None:
    """Make index ``name`` cover exactly ``columns``, adding or rebuilding it as needed.

    On MySQL the old index is dropped and the new one added in one ALTER: the index may be the
    one a foreign key relies on, and MySQL refuses to drop that on its own.
    """
    have = index_columns(table, name)
    if have == columns:
        return
    if have is None:
        op.create_index(name, table, columns)
        return
    if op.get_bind().dialect.name in MYSQL_FAMILY:
        quote = op.get_bind().dialect.identifier_preparer.quote
        cols = ", ".join(quote(c) for c in columns)
        op.execute(
            f"ALTER TABLE {quote(table)} DROP INDEX {quote(name)}, ADD INDEX {quote(name)} ({cols})"
        )
    else:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
