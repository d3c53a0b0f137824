"""Prometheus metrics of the exporter and of retention, on a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STATEMENT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class AnalyticsMetrics:
    """Every exporter and retention metric; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.exported_rows = Counter(
            "analytics_export_rows", "Rows copied to ClickHouse", ["stream"], registry=reg
        )
        self.export_batches = Counter(
            "analytics_export_batches", "Batches copied to ClickHouse", ["stream"], registry=reg
        )
        self.export_batch_seconds = Histogram(
            "analytics_export_batch_duration_seconds",
            "Time to read, insert and commit one batch",
            ["stream"],
            buckets=STATEMENT_BUCKETS,
            registry=reg,
        )
        self.export_cursor = Gauge(
            "analytics_export_cursor",
            "Highest id known to be in ClickHouse",
            ["stream"],
            registry=reg,
        )
        self.lag_rows = Gauge(
            "analytics_export_lag_rows", "Rows not yet in ClickHouse", ["stream"], registry=reg
        )
        self.lag_seconds = Gauge(
            "analytics_export_lag_seconds",
            "Age of the oldest row not yet in ClickHouse (0 when caught up)",
            ["stream"],
            registry=reg,
        )
        self.deleted_rows = Counter(
            "retention_deleted_rows", "log_scores rows deleted by retention", registry=reg
        )
        self.delete_statements = Counter(
            "retention_delete_statements", "DELETE statements run by retention", registry=reg
        )
        self.delete_seconds = Histogram(
            "retention_delete_duration_seconds",
            "Time of one DELETE transaction (its locks are held this long)",
            buckets=STATEMENT_BUCKETS,
            registry=reg,
        )
        self.eligible_rows = Gauge(
            "retention_eligible_rows",
            "Rows the last run deleted, or would have deleted with --dry-run",
            registry=reg,
        )
        self.safe_bound = Gauge(
            "retention_safe_bound_id",
            "Retention deletes only ids below this (lowest scorer / exporter cursor)",
            registry=reg,
        )
        self.oldest_age = Gauge(
            "retention_oldest_row_age_seconds",
            "Age of the oldest log_scores row after the last run",
            registry=reg,
        )
