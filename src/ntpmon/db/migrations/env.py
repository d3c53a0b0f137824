"""Alembic's environment: migrate the connection :mod:`ntpmon.db.migrate` passes in.

There is no ``alembic.ini`` and no URL here: the database is the one the ``db`` command opened,
with ntpmon's own engine settings (SQLite pragmas, MySQL session settings).
"""

from __future__ import annotations

from alembic import context

from ntpmon.db.migrations.helpers import compare_server_default, include_object
from ntpmon.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "ntpmon's revisions run on a live connection through ntpmon.db.migrate "
        "(`monitor-api db upgrade`), not through the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=include_object,
    compare_type=True,
    compare_server_default=compare_server_default,
)
with context.begin_transaction():
    context.run_migrations()
