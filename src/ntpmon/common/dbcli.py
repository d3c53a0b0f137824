"""The ``db`` sub-commands every server program offers: create, upgrade and check the schema."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Engine

from ntpmon.db.engine import connect_database, open_database

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--database-dsn",
        envvar="DATABASE_DSN",
        help="mysql+pymysql://user:pass@host:3306/db, a Go DSN, or sqlite:///path",
    ),
]

WaitOption = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        min=0,
        help="seconds to keep retrying the first connection (the database may be starting)",
    ),
]


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _upgrade(dsn: str | None, wait: float) -> str:
    """Bring the database to the head revision; the line saying what happened."""
    from ntpmon.db.ddl import check_schema
    from ntpmon.db.migrate import upgrade_schema

    engine = connect_database(dsn, wait=wait)
    try:
        before, after = upgrade_schema(engine)
        check_schema(engine)
    finally:
        engine.dispose()
    if before.at_head:
        return f"schema ready on {_where(engine)}: already at head revision {after.head}"
    if before.current:
        start = f"revision {before.current}"
    elif before.has_tables:
        start = "no revision (made before schema revisions)"
    else:
        start = "an empty database"
    return (
        f"schema ready on {_where(engine)}: upgraded from {start} to head revision {after.current}"
    )


def build_db_app() -> typer.Typer:
    """``init``, ``upgrade`` and ``check``; both server programs mount it as ``db``."""
    app = typer.Typer(help="Database schema commands.", no_args_is_help=True)

    @app.command("init")
    def init(dsn: DsnOption = None, wait: WaitOption = 45.0) -> None:
        """Create ntpmon's tables in a new database (on an existing one: the same as upgrade)."""
        typer.echo(_upgrade(dsn, wait))

    @app.command("upgrade")
    def upgrade(dsn: DsnOption = None, wait: WaitOption = 45.0) -> None:
        """Upgrade the schema to this version's head revision (stop the servers first)."""
        typer.echo(_upgrade(dsn, wait))

    @app.command("check")
    def check(dsn: DsnOption = None, wait: WaitOption = 45.0) -> None:
        """Verify the tables, columns and schema revision; fails when an upgrade is due."""
        from ntpmon.db.migrate import schema_revision

        engine = open_database(dsn, wait=wait)
        with engine.connect() as conn:
            state = schema_revision(conn)
        engine.dispose()
        typer.echo(f"schema ok on {_where(engine)}: {state.describe()} (up to date)")

    return app
