"""Prometheus metrics of monitor-api (api.md §12.1), in a registry owned by the server."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from ntpmon.common.version import version

RESULTS = ("ok", "offset", "timeout", "signature_validation", "batch_out_of_order")
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class MetricLabels:
    """The labels that identify a monitor in every counter."""

    monitor: str
    ip_version: str
    account: str
    account_id: str


class ApiMetrics:
    """Counters of handed-out and completed tests plus RPC durations."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tests_requested = Counter(
            "tests_requested",
            "count of ntp tests",
            ["monitor", "ip_version", "account", "account_id"],
            registry=self.registry,
        )
        self.tests_completed = Counter(
            "tests_completed",
            "count of ntp tests",
            ["monitor", "ip_version", "result", "version", "account", "account_id"],
            registry=self.registry,
        )
        self.rpc_duration = Histogram(
            "monitorapi_rpc_duration_seconds",
            "duration of monitor RPCs",
            ["method", "code"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.rpc_queue_wait = Histogram(
            "monitorapi_rpc_queue_wait_seconds",
            "time an RPC waited for a handler thread (SubmitResults go first)",
            ["method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        build = Gauge(
            "monitorapi_build_info",
            "build information",
            ["version"],
            registry=self.registry,
            multiprocess_mode="max",  # one series, not one per process, under --processes
        )
        build.labels(version=version()).set(1)

    def queued(self, method: str, seconds: float) -> None:
        """How long a call waited for a handler thread (see :mod:`ntpmon.api.admission`)."""
        self.rpc_queue_wait.labels(method).observe(seconds)

    def requested(self, labels: MetricLabels, count: int) -> None:
        if count:
            self.tests_requested.labels(
                labels.monitor, labels.ip_version, labels.account, labels.account_id
            ).inc(count)

    def completed(self, labels: MetricLabels, version_text: str, counts: dict[str, int]) -> None:
        """Add every result label, zeros included, so all five series are exposed."""
        for result in RESULTS:
            self.tests_completed.labels(
                labels.monitor,
                labels.ip_version,
                result,
                version_text,
                labels.account,
                labels.account_id,
            ).inc(counts.get(result, 0))


def exposition_registry(metrics: ApiMetrics) -> CollectorRegistry:
    """What ``/metrics`` serves: this process's registry, or under ``--processes N`` (which
    sets ``PROMETHEUS_MULTIPROC_DIR`` before any metric exists) the sum of every process's."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if not directory:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry
