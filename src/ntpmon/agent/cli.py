"""``ntppool-agent``: measures NTP servers for the NTP Pool and reports to monitor-api."""

from __future__ import annotations

import typer

from ntpmon.common.cli import entry_point
from ntpmon.common.version import version_line

app = typer.Typer(
    help="NTP Pool monitoring agent (ntpmon).", no_args_is_help=True, add_completion=False
)


@app.callback()
def _root() -> None:
    """NTP Pool monitoring agent (ntpmon)."""


@app.command("version")
def version_cmd() -> None:
    """Print the program name and version."""
    typer.echo(version_line("ntppool-agent"))


main = entry_point(app, "ntppool-agent")
