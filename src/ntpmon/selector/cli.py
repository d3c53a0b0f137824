"""``monitor-scorer selector ...``: review which monitors watch each server."""

from __future__ import annotations

import typer

selector_app = typer.Typer(help="Monitor selection for each server.", no_args_is_help=True)


@selector_app.callback()
def _selector() -> None:
    """Monitor selection commands."""
