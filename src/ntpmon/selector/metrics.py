"""Prometheus metrics of the selector (spec/selector.md §10), bound to a registry passed in.

Nothing is registered at import time: every service instance (and every test) owns its
registry, so there is no module-level mutable state.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ntpmon.common.version import version
from ntpmon.selector.types import (
    EvaluatedMonitor,
    GlobalStatus,
    ServerStatus,
    StatusChange,
    has_violation,
)

POOL_STATUSES = (ServerStatus.ACTIVE, ServerStatus.TESTING, ServerStatus.CANDIDATE)


def _label(value: str | None) -> str:
    return value or "unknown"


class SelectorMetrics:
    """The selector's counters, gauges and histogram on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.status_changes = Counter(
            "selector_status_changes_total",
            "Status changes written, per monitor, server, transition and reason.",
            [
                "monitor_id_token",
                "monitor_tls_name",
                "from_status",
                "to_status",
                "server_id",
                "reason",
            ],
            registry=registry,
        )
        self.constraint_violations = Counter(
            "selector_constraint_violations_total",
            "Constraint violations detected when evaluating monitors.",
            ["monitor_id_token", "monitor_tls_name", "constraint_type", "server_id"],
            registry=registry,
        )
        self.process_duration = Histogram(
            "selector_process_duration_seconds",
            "Wall time of reviewing one server.",
            registry=registry,
        )
        self.monitors_evaluated = Counter(
            "selector_monitors_evaluated_total",
            "Monitors evaluated, per server.",
            ["server_id"],
            registry=registry,
        )
        self.changes_applied = Counter(
            "selector_changes_applied_total",
            "Status changes written, per server.",
            ["server_id"],
            registry=registry,
        )
        self.changes_failed = Counter(
            "selector_changes_failed_total",
            "Status changes that failed to be written, per server.",
            ["server_id"],
            registry=registry,
        )
        self.monitor_pool_size = Gauge(
            "selector_monitor_pool_size",
            "Monitors per server status as loaded, before this run's changes.",
            ["status", "server_id"],
            registry=registry,
        )
        self.globally_active_monitors = Gauge(
            "selector_globally_active_monitors",
            "Evaluated monitors whose global status is active.",
            ["server_id"],
            registry=registry,
        )
        # Registered as upstream does; upstream never sets it either.
        self.constraint_blocked_monitors = Gauge(
            "selector_constraint_blocked_monitors",
            "Monitors blocked by a constraint (not set).",
            ["constraint_type", "server_id"],
            registry=registry,
        )
        self.build_info = Gauge(
            "selector_build_info",
            "Version of the running selector.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(version=version()).set(1)

    def record_evaluation(self, server_id: int, evaluated: Sequence[EvaluatedMonitor]) -> None:
        """Pool sizes, globally active count and detected violations of one review."""
        sid = str(server_id)
        self.monitors_evaluated.labels(server_id=sid).inc(len(evaluated))
        for status in POOL_STATUSES:
            size = sum(1 for em in evaluated if em.monitor.server_status == status)
            self.monitor_pool_size.labels(status=str(status), server_id=sid).set(size)
        active = sum(1 for em in evaluated if em.monitor.global_status == GlobalStatus.ACTIVE)
        self.globally_active_monitors.labels(server_id=sid).set(active)
        for em in evaluated:
            if em.violation is not None and has_violation(em.violation):
                self.constraint_violations.labels(
                    monitor_id_token=_label(em.monitor.id_token),
                    monitor_tls_name=_label(em.monitor.tls_name),
                    constraint_type=str(em.violation.type),
                    server_id=sid,
                ).inc()

    def record_status_change(
        self, server_id: int, change: StatusChange, id_token: str | None, tls_name: str | None
    ) -> None:
        self.status_changes.labels(
            monitor_id_token=_label(id_token),
            monitor_tls_name=_label(tls_name),
            from_status=str(change.from_status),
            to_status=str(change.to_status),
            server_id=str(server_id),
            reason=change.reason,
        ).inc()

    def record_applied(self, server_id: int, applied: int, failed: int) -> None:
        self.changes_applied.labels(server_id=str(server_id)).inc(applied)
        self.changes_failed.labels(server_id=str(server_id)).inc(failed)
