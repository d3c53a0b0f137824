"""Prometheus metrics of the scorer with the exact exposed names of spec/scorer.md §12.

Three counters are exposed without the ``_total`` suffix that ``prometheus_client`` adds
(dashboards use ``scorer_processed_count``, ``scorer_errors`` and ``scorer_runs``): they are
kept as plain numbers and yielded by a small collector as ``untyped`` families.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric, UntypedMetricFamily
from prometheus_client.registry import Collector

from ntpmon import __version__
from ntpmon.common.version import version

SQL_OPERATIONS = (
    "update_server_score_status",
    "insert_log_score",
    "update_server_score",
    "update_server",
    "update_scorer_status",
    "insert_server_score",
)
DURATION_BUCKETS = tuple(0.01 * 2**k for k in range(10))
SIZE_BUCKETS = tuple(float(n) for n in range(10, 201, 10))


class _PlainCounters(Collector):
    """``scorer_processed_count{scorer}``, ``scorer_errors`` and ``scorer_runs``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed: dict[str, float] = defaultdict(float)
        self.errors = 0.0
        self.runs = 0.0

    def add_processed(self, scorer: str, count: int) -> None:
        with self._lock:
            self.processed[scorer] += count

    def add_error(self) -> None:
        with self._lock:
            self.errors += 1

    def add_run(self) -> None:
        with self._lock:
            self.runs += 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            processed = UntypedMetricFamily(
                "scorer_processed_count", "log_scores processed", labels=["scorer"]
            )
            for name, value in sorted(self.processed.items()):
                processed.add_metric([name], value)
            yield processed
            yield UntypedMetricFamily("scorer_errors", "scorer errors", value=self.errors)
            yield UntypedMetricFamily("scorer_runs", "scorer batches executed", value=self.runs)


class ScorerMetrics:
    """Every scorer metric, registered on one registry (a fresh one per process or test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.plain = _PlainCounters()
        self.registry.register(self.plain)
        reg = self.registry
        self.batch_duration = Histogram(
            "scorer_batch_duration_seconds",
            "Time taken to process each batch",
            ["scorer"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "scorer_batch_size",
            "Number of records processed per batch",
            ["scorer"],
            buckets=SIZE_BUCKETS,
            registry=reg,
        )
        self.deadlocks = Counter(
            "scorer_deadlocks", "Total number of database deadlocks encountered", registry=reg
        )
        self.retries = Counter(
            "scorer_retries",
            "Total number of retry attempts by reason",
            ["scorer", "reason"],
            registry=reg,
        )
        self.sql_updates = Counter(
            "scorer_sql_updates",
            "Total number of SQL update operations by type",
            ["operation"],
            registry=reg,
        )
        for operation in SQL_OPERATIONS:
            self.sql_updates.labels(operation=operation)
        self.build_info = Gauge(
            "scorer_build_info", "Build information", ["version", "python_package"], registry=reg
        )
        self.build_info.labels(version=version(), python_package=__version__).set(1)

    def sql(self, operation: str, count: int = 1) -> None:
        if count:
            self.sql_updates.labels(operation=operation).inc(count)


def serve_metrics(metrics: ScorerMetrics, port: int, addr: str) -> tuple[WSGIServer, int]:
    """Serve ``/metrics`` in a daemon thread; returns the server and the bound port."""
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server, int(server.server_address[1])
