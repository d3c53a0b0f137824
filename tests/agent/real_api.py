"""Helpers for tests against the real monitor-api: its admin CLI, in-process."""

from __future__ import annotations

from sqlalchemy import Engine

from ntpmon.api.cli import app as api_cli
from ntpmon.common.cli import run_app


def admin(db: Engine, *args: str) -> None:
    """``monitor-api admin ...`` against the test database."""
    dsn = db.url.render_as_string(hide_password=False)
    assert run_app(api_cli, "monitor-api", ["admin", *args, "--database-dsn", dsn]) == 0
