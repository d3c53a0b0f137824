"""Exporter throughput: log_scores rows copied from MariaDB to ClickHouse (chDB) per second.

Seeds a temporary MariaDB database with N rows (one agent, 5,000 servers, ids rising with ts),
then runs the exporter until caught up and prints rows/s, the batch time and the lag before
and after. Goal: >= 50,000 rows/s, so a day of the pool (15-20 million rows) exports in minutes.

    python bench/clickhouse_export.py [--rows N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta

from ntpmon.analytics.archive import Archive
from ntpmon.analytics.exporter import DEFAULT_BATCH_SIZE, Exporter
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.db.clickhouse import LOG_SCORES, exported_ids
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.logseed import seed_log_scores, seed_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with temporary_mysql_database("ntpmon_bench") as engine, tempfile.TemporaryDirectory() as tmp:
        servers = seed_world(engine, servers_count=5000, now=now)
        started = time.perf_counter()
        seed_log_scores(
            engine,
            servers,
            start=now - timedelta(days=1),
            count=args.rows,
            spacing=timedelta(seconds=86400 / args.rows),
        )
        print(f"seeded {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        archive = Archive(f"chdb://{tmp}/clickhouse")
        metrics = AnalyticsMetrics()
        exporter = Exporter(engine, archive, batch_size=args.batch_size, metrics=metrics)
        before = exporter.lag()
        started = time.perf_counter()
        copied = exporter.run()
        took = time.perf_counter() - started
        after = exporter.lag()
        with archive.session() as client:
            folded, stored, _ = exported_ids(client, LOG_SCORES)
    batches = (
        metrics.registry.get_sample_value(
            "analytics_export_batch_duration_seconds_count", {"stream": "log_scores"}
        )
        or 1
    )
    batch_s = (
        metrics.registry.get_sample_value(
            "analytics_export_batch_duration_seconds_sum", {"stream": "log_scores"}
        )
        or 0.0
    )
    print(f"lag before: {before.rows:,} rows, {before.seconds:.0f} s")
    print(f"exported {copied:,} rows in {took:.2f} s: {copied / took:,.0f} rows/s (goal >= 50,000)")
    print(f"batches: {batches:.0f} of {args.batch_size:,}, mean {batch_s / batches * 1000:.0f} ms")
    print(
        f"lag after: {after.rows} rows, {after.seconds:.0f} s; in ClickHouse {folded:,} ids "
        f"({stored:,} stored)"
    )


if __name__ == "__main__":
    main()
