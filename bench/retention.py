"""Retention on a seeded MariaDB log_scores: rows/s deleted and the longest DELETE transaction.

Seeds N rows spread over 20 days (default 2,000,000; one agent, 5,000 servers), puts the
scorer cursor at the end, then deletes everything older than 14 days in batches and prints
rows/s, statements and the longest single DELETE transaction (the longest time its row locks
were held). Goal: no statement over 100 ms.

    python bench/retention.py [--rows N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.analytics.retention import DEFAULT_BATCH_SIZE, Pruner
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.logseed import seed_log_scores, seed_world, set_scorer_cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with temporary_mysql_database("ntpmon_bench") as engine:
        servers = seed_world(engine, servers_count=5000, now=now)
        started = time.perf_counter()
        _, last = seed_log_scores(
            engine,
            servers,
            start=now - timedelta(days=20),
            count=args.rows,
            spacing=timedelta(seconds=20 * 86400 / args.rows),
        )
        set_scorer_cursor(engine, last)
        print(f"seeded {args.rows:,} rows over 20 days in {time.perf_counter() - started:.1f} s")
        metrics = AnalyticsMetrics()
        pruner = Pruner(engine, batch_size=args.batch_size, metrics=metrics)
        started = time.perf_counter()
        result = pruner.run()
        took = time.perf_counter() - started
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in next(iter(metrics.delete_seconds.collect())).samples
        if s.name.endswith("_bucket")
    ]
    over_100ms = result.statements - next(v for le, v in buckets if le == 0.1)
    print(
        f"deleted {result.deleted:,} rows in {took:.1f} s: {result.deleted / took:,.0f} rows/s "
        f"({result.statements:,} DELETEs of <= {args.batch_size:,} rows)"
    )
    print(
        f"longest DELETE transaction {result.longest_statement_s * 1000:.1f} ms; "
        f"over 100 ms: {over_100ms:.0f} (goal: none)"
    )


if __name__ == "__main__":
    main()
