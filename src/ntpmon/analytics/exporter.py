"""Copy new rows of a table to ClickHouse in id order, with a cursor kept in MySQL.

One batch: read the cursor, read the next rows by primary key, insert them into ClickHouse as
one block, then move the cursor with a compare-and-set. A crash between the insert and the
cursor update (kill -9) leaves rows in ClickHouse that the next run copies again: at-least-once
delivery, made idempotent by the ReplacingMergeTree keyed by id (see ``ntpmon.db.clickhouse``).
No lock is held while ClickHouse works, so the API's inserts never wait for the exporter.

Known limit, the same as the scorers' (spec/scorer.md SQ24): the cursor is an id high-water
mark, so a row whose transaction commits after a higher id was copied is not copied.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ntpmon.analytics.archive import Archive
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.common.clock import Clock, SystemClock, as_utc
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import (
    LOG_SCORES,
    STREAMS,
    ClickHouseClient,
    ExportStream,
    insert_columns,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 20_000


@dataclasses.dataclass(frozen=True, slots=True)
class Lag:
    """How far ClickHouse is behind: rows not copied yet and the age of the oldest of them."""

    cursor: int
    rows: int
    seconds: float


class Exporter:
    """Copies one :class:`ExportStream` (by default ``log_scores``) to an :class:`Archive`."""

    def __init__(
        self,
        engine: Engine,
        archive: Archive,
        *,
        stream: ExportStream = LOG_SCORES,
        batch_size: int = DEFAULT_BATCH_SIZE,
        metrics: AnalyticsMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.engine = engine
        self.archive = archive
        self.stream = stream
        self.batch_size = batch_size
        self.metrics = metrics or AnalyticsMetrics()
        self.clock = clock or SystemClock()
        # DateTime columns go to ClickHouse as aware UTC: clickhouse-connect reads a naive
        # datetime in the process's local time zone.
        self._datetime_columns = tuple(
            i for i, (_, kind) in enumerate(stream.columns) if kind.startswith("DateTime")
        )

    def _as_columns(self, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
        """The rows transposed to columns, DateTime values made aware (UTC)."""
        columns = [list(column) for column in zip(*rows, strict=True)]
        for i in self._datetime_columns:
            columns[i] = [
                v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
                for v in columns[i]
            ]
        return columns

    def cursor(self) -> int:
        """The stream's cursor, created at 0 on first use (so retention starts honouring it)."""
        with self.engine.begin() as conn:
            return q.create_export_cursor(conn, self.stream.name)

    def export_batch(self, client: ClickHouseClient) -> int:
        """Copy at most one batch; returns the rows copied (0: caught up)."""
        started = time.perf_counter()
        with self.engine.connect() as conn:
            cursor = q.get_export_cursor(conn, self.stream.name) or 0
            rows = q.rows_after(
                conn,
                self.stream.source,
                self.stream.column_names,
                after_id=cursor,
                limit=self.batch_size,
            )
        if not rows:
            return 0
        insert_columns(client, self.stream, self._as_columns(rows))
        last = int(rows[-1][0])
        with self.engine.begin() as conn:
            moved = q.advance_export_cursor(conn, self.stream.name, old=cursor, new=last)
        if not moved:
            log.warning(
                "export cursor moved by another exporter; rows copied twice fold by id",
                extra={"stream": self.stream.name, "from": cursor},
            )
        name = self.stream.name
        self.metrics.exported_rows.labels(name).inc(len(rows))
        self.metrics.export_batches.labels(name).inc()
        self.metrics.export_batch_seconds.labels(name).observe(time.perf_counter() - started)
        self.metrics.export_cursor.labels(name).set(last)
        return len(rows)

    def drain(
        self,
        client: ClickHouseClient,
        stop: threading.Event | None = None,
        *,
        max_batches: int | None = None,
    ) -> int:
        """Copy batches over ``client`` until caught up (or ``max_batches``, or ``stop``)."""
        total = batches = 0
        while stop is None or not stop.is_set():
            count = self.export_batch(client)
            total += count
            batches += 1
            if count < self.batch_size or (max_batches is not None and batches >= max_batches):
                break
        return total

    def run(self, stop: threading.Event | None = None, *, max_batches: int | None = None) -> int:
        """Copy batches until caught up (or ``max_batches``, or ``stop``); returns rows copied."""
        self.cursor()
        with self.archive.session() as client:
            total = self.drain(client, stop, max_batches=max_batches)
        self.lag()
        return total

    def lag(self) -> Lag:
        """Rows and seconds behind, also set on the lag gauges."""
        with self.engine.connect() as conn:
            cursor = q.get_export_cursor(conn, self.stream.name) or 0
            rows, first_ts = q.backlog(conn, self.stream.source, after_id=cursor)
        seconds = 0.0
        if first_ts is not None:
            seconds = max(0.0, (self.clock.now() - as_utc(first_ts)).total_seconds())
        self.metrics.lag_rows.labels(self.stream.name).set(rows)
        self.metrics.lag_seconds.labels(self.stream.name).set(seconds)
        self.metrics.export_cursor.labels(self.stream.name).set(cursor)
        return Lag(cursor=cursor, rows=rows, seconds=seconds)


class StreamsExporter:
    """One :class:`Exporter` per table of :data:`~ntpmon.db.clickhouse.STREAMS`, one archive.

    A pass copies every stream inside a single archive session: with chDB each session opens
    the directory that the status pages (another process) open too, so one open per pass
    instead of one per stream keeps the time the pages may have to wait short.
    """

    def __init__(
        self,
        engine: Engine,
        archive: Archive,
        *,
        streams: tuple[ExportStream, ...] = STREAMS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        metrics: AnalyticsMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.archive = archive
        self.metrics = metrics or AnalyticsMetrics()
        self.exporters = tuple(
            Exporter(
                engine,
                archive,
                stream=stream,
                batch_size=batch_size,
                metrics=self.metrics,
                clock=clock,
            )
            for stream in streams
        )

    def run(self, stop: threading.Event | None = None, *, max_batches: int | None = None) -> int:
        """Copy every stream until caught up (``max_batches`` per stream); rows copied in all."""
        for exporter in self.exporters:
            exporter.cursor()
        with self.archive.session() as client:
            total = sum(e.drain(client, stop, max_batches=max_batches) for e in self.exporters)
        self.lag()
        return total

    def lag(self) -> dict[str, Lag]:
        """Each stream's lag by name (also set on the lag gauges)."""
        return {e.stream.name: e.lag() for e in self.exporters}
