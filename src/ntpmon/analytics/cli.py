"""``monitor-scorer export …`` (log_scores, traceroutes to ClickHouse), ``… retention …``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from prometheus_client import disable_created_metrics, start_http_server
from sqlalchemy import Engine

from ntpmon.analytics.archive import Archive, ArchiveError
from ntpmon.analytics.exporter import DEFAULT_BATCH_SIZE as EXPORT_BATCH
from ntpmon.analytics.exporter import Lag, StreamsExporter
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.analytics.retention import DEFAULT_BATCH_SIZE as PRUNE_BATCH
from ntpmon.analytics.retention import Pruner, parse_age
from ntpmon.common.clock import SystemClock
from ntpmon.common.dbcli import DsnOption, WaitOption
from ntpmon.common.errors import NtpmonError
from ntpmon.common.logsetup import setup_logging
from ntpmon.db.engine import open_database

log = logging.getLogger(__name__)

ClickHouseDsn = Annotated[
    str,
    typer.Option(
        "--clickhouse-dsn",
        envvar="CLICKHOUSE_DSN",
        help="http://user:pass@host:8123/database (a ClickHouse server) or chdb:///dir (chDB)",
    ),
]
MetricsPort = Annotated[
    int, typer.Option("--metrics-port", help="Serve /metrics here while running (0: free port).")
]
LogLevel = Annotated[str, typer.Option("--log-level", envvar="LOG_LEVEL")]

export_app = typer.Typer(
    help="Copy log_scores and traceroutes to ClickHouse (long history).", no_args_is_help=True
)
retention_app = typer.Typer(
    help="Delete old log_scores rows that are scored and exported.", no_args_is_help=True
)


@contextmanager
def _session(
    dsn: str | None, level: str, wait: float, metrics_port: int | None
) -> Iterator[tuple[Engine, AnalyticsMetrics]]:
    setup_logging(level)
    disable_created_metrics()
    metrics = AnalyticsMetrics()
    engine = open_database(dsn, wait=wait)
    server = None
    try:
        if metrics_port is not None:
            server, _ = start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
            log.info("metrics listening", extra={"port": server.server_address[1]})
        yield engine, metrics
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        engine.dispose()


def _stop_on_signals() -> threading.Event:
    import signal

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _repeat(work: Callable[[threading.Event], int], interval: float) -> None:
    """Run ``work`` until a signal; sleep ``interval`` after a pass that found nothing to do."""
    stop = _stop_on_signals()
    while not stop.is_set():
        try:
            done = work(stop)
        except ArchiveError as exc:  # ClickHouse away: keep MySQL's rows, try again later
            log.error("export failed, retrying", extra={"error": str(exc)})
            done = 0
        if not done:
            stop.wait(interval)


def _exporter(engine: Engine, dsn: str, batch: int, metrics: AnalyticsMetrics) -> StreamsExporter:
    if not dsn:
        raise NtpmonError("no ClickHouse configured: pass --clickhouse-dsn or set CLICKHOUSE_DSN")
    return StreamsExporter(
        engine, Archive(dsn), batch_size=batch, metrics=metrics, clock=SystemClock()
    )


def _lag_lines(lags: dict[str, Lag]) -> str:
    """One line per stream: its cursor and how far behind it is."""
    return "\n".join(
        f"{name}: cursor {lag.cursor}, behind {lag.rows} rows, {lag.seconds:.0f} s"
        for name, lag in lags.items()
    )


BatchOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Rows per ClickHouse insert.")
]


@export_app.command("run")
def export_run(  # noqa: PLR0917 - typer options
    clickhouse_dsn: ClickHouseDsn = "",
    dsn: DsnOption = None,
    batch_size: BatchOption = EXPORT_BATCH,
    max_batches: Annotated[
        int, typer.Option("--max-batches", min=0, help="0: until caught up")
    ] = 0,
    log_level: LogLevel = "info",
    wait: WaitOption = 45.0,
) -> None:
    """Copy new rows of every exported table until caught up, then print the lag and exit."""
    with _session(dsn, log_level, wait, None) as (engine, metrics):
        exporter = _exporter(engine, clickhouse_dsn, batch_size, metrics)
        copied = exporter.run(max_batches=max_batches or None)
        lags = exporter.lag()
    typer.echo(f"exported {copied} rows\n{_lag_lines(lags)}")


@export_app.command("server")
def export_server(  # noqa: PLR0917 - typer options
    clickhouse_dsn: ClickHouseDsn = "",
    dsn: DsnOption = None,
    batch_size: BatchOption = EXPORT_BATCH,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between idle passes.")
    ] = 10,
    metrics_port: MetricsPort = 9001,
    log_level: LogLevel = "info",
    wait: WaitOption = 45.0,
) -> None:
    """Export continuously until SIGINT/SIGTERM, with lag metrics on /metrics."""
    with _session(dsn, log_level, wait, metrics_port) as (engine, metrics):
        exporter = _exporter(engine, clickhouse_dsn, batch_size, metrics)
        _repeat(exporter.run, interval)


@export_app.command("status")
def export_status(
    dsn: DsnOption = None, log_level: LogLevel = "warning", wait: WaitOption = 45.0
) -> None:
    """Print each table's cursor and how far ClickHouse is behind; reads MySQL only."""
    with _session(dsn, log_level, wait, None) as (engine, metrics):
        lags = StreamsExporter(engine, Archive("chdb://unused"), metrics=metrics).lag()
    typer.echo(_lag_lines(lags))


MaxAge = Annotated[
    str, typer.Option("--max-age", help="Keep rows younger than this: 14d, 36h (minimum 24h).")
]


def _pruner(engine: Engine, max_age: str, batch: int, pause: float, m: AnalyticsMetrics) -> Pruner:
    try:
        return Pruner(
            engine,
            max_age=parse_age(max_age),
            batch_size=batch,
            pause=pause,
            metrics=m,
            clock=SystemClock(),
        )
    except ValueError as exc:
        raise NtpmonError(str(exc)) from exc


PruneBatch = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per DELETE.")]
Pause = Annotated[float, typer.Option("--pause", min=0, help="Seconds between DELETEs.")]


@retention_app.command("run")
def retention_run(  # noqa: PLR0917 - typer options
    dsn: DsnOption = None,
    max_age: MaxAge = "14d",
    batch_size: PruneBatch = PRUNE_BATCH,
    pause: Pause = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    log_level: LogLevel = "info",
    wait: WaitOption = 45.0,
) -> None:
    """Delete log_scores rows older than --max-age that every scorer (and the exporter) passed."""
    with _session(dsn, log_level, wait, None) as (engine, metrics):
        result = _pruner(engine, max_age, batch_size, pause, metrics).run(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.deleted} rows in {result.statements} statements "
        f"(longest {result.longest_statement_s * 1000:.1f} ms); {result.reason}"
    )


@retention_app.command("server")
def retention_server(  # noqa: PLR0917 - typer options
    dsn: DsnOption = None,
    max_age: MaxAge = "14d",
    batch_size: PruneBatch = PRUNE_BATCH,
    pause: Pause = 0.0,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between runs.")] = 3600,
    metrics_port: MetricsPort = 9002,
    log_level: LogLevel = "info",
    wait: WaitOption = 45.0,
) -> None:
    """Run retention every --interval seconds until SIGINT/SIGTERM, with metrics."""
    with _session(dsn, log_level, wait, metrics_port) as (engine, metrics):
        pruner = _pruner(engine, max_age, batch_size, pause, metrics)

        def once(stop: threading.Event) -> int:
            pruner.run(stop=stop)
            return 0  # always wait the interval

        _repeat(once, interval)
