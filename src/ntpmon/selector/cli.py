"""``monitor-scorer selector ...``: review which monitors watch each server.

``server`` loops forever, ``once`` reviews one batch (or one server) and exits, ``simulate``
prints the plan for one server without writing anything.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.common.clock import SystemClock
from ntpmon.common.dbcli import DsnOption
from ntpmon.common.logsetup import setup_logging
from ntpmon.common.metricsopts import (
    ALL_ADDRESSES,
    DEFAULT_PORT,
    MetricsAddrOption,
    MetricsPortOption,
)
from ntpmon.db.engine import open_database
from ntpmon.selector.errors import SelectorError
from ntpmon.selector.metrics import SelectorMetrics
from ntpmon.selector.report import format_plan, format_review
from ntpmon.selector.service import review_batch, review_one, run_loop, simulate

selector_app = typer.Typer(help="Monitor selection for each server.", no_args_is_help=True)

LogLevelOption = Annotated[
    str, typer.Option("--log-level", envvar="LOG_LEVEL", help="debug, info, warn or error")
]


@contextmanager
def _database(dsn: str | None, log_level: str) -> Iterator[Engine]:
    """Logging set up, the database opened and checked, and the engine disposed at the end.

    A database error that ends a command becomes one line (``prog: error: ...``).
    """
    setup_logging(log_level)
    engine = open_database(dsn)
    try:
        yield engine
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise SelectorError(f"database error: {reason}") from exc
    finally:
        engine.dispose()


@selector_app.callback()
def _selector() -> None:
    """Monitor selection commands."""


@selector_app.command("server")
def server_cmd(
    dsn: DsnOption = None,
    metrics_port: MetricsPortOption = DEFAULT_PORT,
    metrics_addr: MetricsAddrOption = ALL_ADDRESSES,
    log_level: LogLevelOption = "info",
) -> None:
    """Review due servers forever (batches of 10; idle back-off 3 s to 60 s)."""
    with _database(dsn, log_level) as engine:
        registry = CollectorRegistry()
        metrics = SelectorMetrics(registry)
        server, _thread = start_http_server(metrics_port, addr=metrics_addr, registry=registry)
        typer.echo(f"selector metrics on http://{metrics_addr}:{server.server_port}/metrics")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            run_loop(engine, SystemClock(), metrics, stop)
        finally:
            server.shutdown()


@selector_app.command("once")
def once_cmd(
    server_id: Annotated[
        int | None, typer.Argument(help="Review this server now, due or not")
    ] = None,
    dsn: DsnOption = None,
    log_level: LogLevelOption = "warn",
) -> None:
    """Review one batch of due servers (or exactly SERVER_ID) and exit."""
    with _database(dsn, log_level) as engine:
        clock = SystemClock()
        if server_id is None:
            reviews = review_batch(engine, clock)
            for review in reviews:
                typer.echo(format_review(review))
            typer.echo(f"reviewed {len(reviews)} server(s)")
        else:
            typer.echo(format_review(review_one(engine, clock, server_id)))


@selector_app.command("simulate")
def simulate_cmd(
    server_id: Annotated[int, typer.Argument(help="The server to plan")],
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Also show every monitor and DB write")
    ] = False,
    dsn: DsnOption = None,
    log_level: LogLevelOption = "warn",
) -> None:
    """Print what a review of SERVER_ID would change, without writing anything."""
    with _database(dsn, log_level) as engine:
        typer.echo(format_plan(simulate(engine, SystemClock(), server_id), verbose=verbose))
