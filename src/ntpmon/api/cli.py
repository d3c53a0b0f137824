"""``monitor-api``: the gRPC service, management API and admin commands."""

from __future__ import annotations

import typer

from ntpmon.common.cli import entry_point
from ntpmon.common.dbcli import build_db_app
from ntpmon.common.version import version_line

app = typer.Typer(
    help="NTP Pool monitor API server (ntpmon).", no_args_is_help=True, add_completion=False
)
app.add_typer(build_db_app(), name="db")


@app.command("version")
def version_cmd() -> None:
    """Print the program version."""
    typer.echo(version_line("monitor-api"))


main = entry_point(app, "monitor-api")
