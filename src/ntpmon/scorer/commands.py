"""``monitor-scorer scorer run|server|setup`` and ``db status`` (spec/scorer.md §9-§10)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from prometheus_client import disable_created_metrics

from ntpmon.common.clock import SystemClock
from ntpmon.common.dbcli import DsnOption, WaitOption
from ntpmon.common.logsetup import setup_logging
from ntpmon.common.metricsopts import (
    ALL_ADDRESSES,
    DEFAULT_PORT,
    MetricsAddrOption,
    MetricsPortOption,
)
from ntpmon.db.engine import open_database
from ntpmon.scorer.metrics import ScorerMetrics, serve_metrics
from ntpmon.scorer.runner import Runner
from ntpmon.scorer.service import serve
from ntpmon.scorer.setup import scorer_status_lines, setup_scorers

log = logging.getLogger(__name__)

LogLevel = Annotated[
    str, typer.Option("--log-level", envvar="LOG_LEVEL", help="debug, info, warn or error.")
]

scorer_app = typer.Typer(help="Score log_scores into server scores.", no_args_is_help=True)


@contextmanager
def _metrics_server(metrics: ScorerMetrics, port: int, addr: str) -> Iterator[None]:
    server, bound = serve_metrics(metrics, port, addr)
    log.info("metrics listening", extra={"addr": addr, "port": bound})
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _run(dsn: str | None, port: int, addr: str, level: str, *, once: bool, wait: float) -> None:
    setup_logging(level)
    disable_created_metrics()
    engine = open_database(dsn, wait=wait)
    metrics = ScorerMetrics()
    runner = Runner(engine, metrics=metrics, clock=SystemClock())
    stop = None if once else _stop_on_signals()
    try:
        with _metrics_server(metrics, port, addr):
            total = serve(runner, once=once, stop=stop)
    finally:
        engine.dispose()
    log.info("scorer finished", extra={"processed": total})


def _loop_command(name: str, *, once: bool, summary: str) -> None:
    """``scorer run`` and ``scorer server``: the same options, once or until a signal."""

    def command(
        dsn: DsnOption = None,
        metrics_port: MetricsPortOption = DEFAULT_PORT,
        metrics_addr: MetricsAddrOption = ALL_ADDRESSES,
        log_level: LogLevel = "info",
        wait: WaitOption = 45.0,
    ) -> None:
        _run(dsn, metrics_port, metrics_addr, log_level, once=once, wait=wait)

    command.__doc__ = summary
    scorer_app.command(name)(command)


_loop_command("run", once=True, summary="Run once: at most one batch per scorer, then exit.")
_loop_command("server", once=False, summary="Score continuously until SIGINT/SIGTERM.")


@scorer_app.command("setup")
def setup_cmd(dsn: DsnOption = None, log_level: LogLevel = "info", wait: WaitOption = 45.0) -> None:
    """Create the missing scorer monitors (every, recentmedian) and their cursors."""
    setup_logging(level=log_level)
    engine = open_database(dsn, wait=wait)
    try:
        created = setup_scorers(engine, now=SystemClock().now())
    finally:
        engine.dispose()
    typer.echo(f"created: {', '.join(created)}" if created else "all scorers already configured")


def print_scorer_status(dsn: str | None) -> None:
    engine = open_database(dsn)
    try:
        for line in scorer_status_lines(engine):
            typer.echo(line)
    finally:
        engine.dispose()


def add_scorer_status(db_app: typer.Typer) -> None:
    """``db``, ``db --scorer-status`` and ``db status``: the scorer cursors (§10.4).

    Upstream's ``monitor-scorer db`` prints the cursors with or without the flag (the flag is
    accepted and ignored), so the group must not stop at "missing command" when called bare.
    """
    db_app.info.no_args_is_help = False

    @db_app.callback(invoke_without_command=True)
    def _db(
        ctx: typer.Context,
        scorer_status: Annotated[  # upstream's flag: accepted, changes nothing
            bool, typer.Option("--scorer-status", help="Print the scorer cursors (the default).")
        ] = False,
        dsn: DsnOption = None,
    ) -> None:
        """Database commands; without one, print the scorer cursors."""
        if ctx.invoked_subcommand is None:
            print_scorer_status(dsn)

    @db_app.command("status")
    def _status(dsn: DsnOption = None) -> None:
        """Print one line per scorer cursor: id, name, log_score_id, modified_on."""
        print_scorer_status(dsn)
