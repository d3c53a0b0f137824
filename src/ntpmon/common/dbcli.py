"""The ``db`` sub-commands every server program offers: create and check the schema."""

from __future__ import annotations

from typing import Annotated

import typer

from ntpmon.db.engine import open_database

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


def build_db_app() -> typer.Typer:
    app = typer.Typer(help="Database schema commands.", no_args_is_help=True)

    @app.command("init")
    def init(dsn: DsnOption = None, wait: WaitOption = 45.0) -> None:
        """Create ntpmon's tables where they are missing (existing tables are kept)."""
        engine = open_database(dsn, create=True, wait=wait)
        typer.echo(f"schema ready on {engine.url.render_as_string(hide_password=True)}")

    @app.command("check")
    def check(dsn: DsnOption = None, wait: WaitOption = 45.0) -> None:
        """Verify the database has every table and column ntpmon needs."""
        engine = open_database(dsn, wait=wait)
        typer.echo(f"schema ok on {engine.url.render_as_string(hide_password=True)}")

    return app
