"""The agent's real :class:`~ntpmon.agent.daemon.telemetry.Telemetry`, recording into memory.

Tests check what the agent would export by plugging the SDK's in-memory metric reader and span
exporter into the same Telemetry the agent builds, instead of stubbing OpenTelemetry: whatever
reaches them would reach an OTLP collector. Imports the SDK, so tests and tools only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.ntp.instruments import ProbeInstruments

Point = tuple[dict[str, Any], float]
"""One data point: its attributes and its value (a sum, a gauge's last value, a count)."""


class RecordingTelemetry:
    """A Telemetry with no OTLP endpoint whose metrics and spans are read back in memory."""

    def __init__(self, env: str = "devel") -> None:
        self.reader = InMemoryMetricReader()
        self.exporter = InMemorySpanExporter()
        self.telemetry = Telemetry(env, metric_reader=self.reader, span_exporter=self.exporter)

    @property
    def instruments(self) -> ProbeInstruments:
        """What the Telemetry hands to the probes."""
        return self.telemetry.probe_instruments

    def metrics(self) -> dict[str, list[Point]]:
        """Every metric collected so far, by name (cumulative since the start)."""
        out: dict[str, list[Point]] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(
                        (dict(p.attributes or {}), getattr(p, "value", getattr(p, "count", 0)))
                        for p in metric.data.data_points
                    )
        return out

    def points(self, name: str) -> list[Point]:
        """The data points of one metric; empty when nothing was recorded."""
        return self.metrics().get(name, [])

    def resource(self) -> Mapping[str, Any]:
        """The resource attributes the metrics carry (service name, environment)."""
        data = self.reader.get_metrics_data()
        assert data is not None and data.resource_metrics, "no metrics recorded"
        return dict(data.resource_metrics[0].resource.attributes)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Ended spans in the order they ended, optionally only those called ``name``."""
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def shutdown(self) -> None:
        self.telemetry.shutdown()
