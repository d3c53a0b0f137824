"""``monitor-scorer``: turns log_scores into server scores and runs the selector."""

from __future__ import annotations

import typer

from ntpmon.analytics.cli import export_app, retention_app
from ntpmon.common.cli import entry_point
from ntpmon.common.dbcli import build_db_app
from ntpmon.common.version import version_line
from ntpmon.scorer.commands import add_scorer_status, scorer_app
from ntpmon.selector.cli import selector_app

app = typer.Typer(
    help="NTP Pool monitor scorer and selector (ntpmon).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = build_db_app()
add_scorer_status(db_app)
app.add_typer(db_app, name="db")
app.add_typer(scorer_app, name="scorer")
app.add_typer(selector_app, name="selector")
app.add_typer(export_app, name="export")
app.add_typer(retention_app, name="retention")


@app.command("version")
def version_cmd() -> None:
    """Print the program version."""
    typer.echo(version_line("monitor-scorer"))


main = entry_point(app, "monitor-scorer")
