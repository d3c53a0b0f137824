"""TS-8: the exposed metric names and help texts of spec/scorer.md §12."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from ntpmon.scorer.metrics import SQL_OPERATIONS, ScorerMetrics
from ntpmon.scorer.runner import Runner

NAMES = [
    "scorer_processed_count",
    "scorer_errors",
    "scorer_runs",
    "scorer_batch_duration_seconds_bucket",
    "scorer_batch_size_bucket",
    "scorer_deadlocks_total",
    "scorer_retries_total",
    "scorer_sql_updates_total",
    "scorer_build_info",
]


@pytest.mark.db
def test_ts8_metrics_on_a_fresh_registry(db: Engine) -> None:
    registry = CollectorRegistry()
    runner = Runner(db, metrics=ScorerMetrics(registry))
    for operation in SQL_OPERATIONS:
        runner.metrics.sql(operation)
        runner.metrics.sql(operation)
    runner.metrics.plain.add_processed("every", 3)
    runner.metrics.batch_size.labels(scorer="every").observe(3)
    runner.metrics.batch_duration.labels(scorer="every").observe(0.2)
    runner.metrics.retries.labels(scorer="every", reason="deadlock").inc()
    text = generate_latest(registry).decode()
    assert "# HELP scorer_sql_updates_total Total number of SQL update operations by type" in text
    for operation in SQL_OPERATIONS:
        assert f'scorer_sql_updates_total{{operation="{operation}"}} 2.0' in text
    for name in NAMES:
        assert f"\n{name}" in text
    assert 'scorer_processed_count{scorer="every"} 3.0' in text
    assert "# HELP scorer_runs scorer batches executed" in text
    assert 'scorer_batch_duration_seconds_bucket{le="5.12",scorer="every"} 1.0' in text
    assert 'scorer_batch_size_bucket{le="200.0",scorer="every"} 1.0' in text
