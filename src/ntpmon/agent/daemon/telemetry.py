"""OpenTelemetry for the agent (agent.md §14): traces, metrics and logs, exported over OTLP
only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is configured; otherwise spans still carry trace
context into every RPC so monitor-api's logs can be joined with the agent's.

Providers are owned by the Telemetry object (not installed globally) so tests and several
agents in one process do not share state; the probe code gets the Telemetry's tracer and
instruments through :attr:`Telemetry.probe_instruments` (see ``ntpmon.ntp.instruments``).
The SDK (~2.4 MB of RSS, docs/agent.md, Memory footprint) is loaded only when something
consumes its data: an OTLP endpoint, a metric reader or a span exporter. Otherwise a
context-only tracer and the API's no-op meter do the job at no cost.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from opentelemetry.trace import Span

from ntpmon.common.logsetup import LogLevelError, parse_level
from ntpmon.common.version import version
from ntpmon.ntp.instruments import INSTRUMENTATION, ProbeInstruments

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

SERVICE_NAME = "ntppool-agent"


class ContextOnlyTracer(trace.Tracer):
    """Spans that carry a trace context and record nothing, as the SDK's do with no exporter.

    A new span continues the current trace (or starts one) with a fresh span id, sampled like
    the SDK's default sampler marks it, so RPC metadata and log lines still join the agent's
    batches with monitor-api's.
    """

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *_: Any, **__: Any
    ) -> Span:
        """A span under the current one; kind, attributes and links have nothing to record."""
        parent = trace.get_current_span(context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else _random_id(128)
        return trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id,
                _random_id(64),
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                trace_state=parent.trace_state if parent.is_valid else None,
            )
        )

    @contextmanager  # type: ignore[override]
    def start_as_current_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        *_: Any,
        end_on_exit: bool = True,
        **__: Any,
    ) -> Iterator[Span]:
        span = self.start_span(name, context)
        with trace.use_span(span, end_on_exit=end_on_exit) as current:
            yield current


def _random_id(bits: int) -> int:
    """A non-zero random id, as the SDK's RandomIdGenerator makes them."""
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class Telemetry:
    """Tracer and the ``monitor.client`` instruments.

    ``metric_reader`` and ``span_exporter`` add in-process consumers (tests read what the agent
    records through them); either one starts the SDK like an OTLP endpoint does.
    """

    def __init__(
        self,
        env: str,
        *,
        environ: Mapping[str, str] | None = None,
        metric_reader: MetricReader | None = None,
        span_exporter: SpanExporter | None = None,
        debug: bool = False,
        otlp_log_level: str = "",
    ) -> None:
        environ = os.environ if environ is None else environ
        self.exporting = bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        self.log_handler: logging.Handler | None = None
        self.debug = debug
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.tracer: trace.Tracer = ContextOnlyTracer()
        self.meter: Meter = NoOpMeter(INSTRUMENTATION)
        if self.exporting or metric_reader is not None or span_exporter is not None:
            self._start_sdk(env, metric_reader, span_exporter)
        meter = self.meter
        self.probe_instruments = ProbeInstruments.create(meter, self.tracer)
        """For the workers' probes, the local clock check and MQTT ad-hoc checks (made once)."""
        self._rpc_requests = meter.create_counter("monitor.rpc_requests_total")
        self._rpc_duration = meter.create_histogram("monitor.rpc_duration", unit="s")
        self._tests_requested = meter.create_counter("monitor.tests_requested_total")
        self._tests_completed = meter.create_counter("monitor.tests_completed_total")
        self.otlp_log_level = ""
        if otlp_log_level:
            self.set_otlp_log_level(otlp_log_level)

    def _start_sdk(
        self, env: str, metric_reader: MetricReader | None, span_exporter: SpanExporter | None
    ) -> None:
        """The SDK's providers, with OTLP exporters when an endpoint is configured."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create(
            {
                "service.name": SERVICE_NAME,
                "service.version": version(),
                "deployment.environment": env,
            }
        )
        self.tracer_provider = TracerProvider(resource=resource)
        if span_exporter is not None:  # in-process: each span as it ends, no export thread
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        readers: list[MetricReader] = [] if metric_reader is None else [metric_reader]
        if self.exporting:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
            self._start_log_export(resource)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        self.tracer = self.tracer_provider.get_tracer(INSTRUMENTATION)
        self.meter = self.meter_provider.get_meter(INSTRUMENTATION)

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
        with self.tracer.start_as_current_span(name, attributes=dict(attributes or {})) as span:
            yield span

    def rpc_done(self, method: str, ok: bool, seconds: float) -> None:
        """Record one RPC: upstream's type labels plus its duration."""
        kind = {"GetConfig": "config", "GetServers": "getServers"}.get(method, "submitResults")
        attrs = {"type": kind, "status_code": "success" if ok else "error"}
        self._rpc_requests.add(1, attrs)
        self._rpc_duration.record(seconds, attrs)

    def tests_requested(self, family: int, n: int) -> None:
        self._tests_requested.add(n, {"ip_version": f"v{family}"})

    def test_completed(self, family: int, result: str) -> None:
        self._tests_completed.add(1, {"ip_version": f"v{family}", "result": result})

    def _start_log_export(self, resource: Resource) -> None:
        """Records also go to OTLP, at their own level (the server's choice, debug with --debug)."""
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        with warnings.catch_warnings():
            # deprecated in favour of opentelemetry-instrumentation-logging, one more dependency
            # for the same handler; this one is still shipped and works
            warnings.simplefilter("ignore", DeprecationWarning)
            self.log_handler = LoggingHandler(logger_provider=self.logger_provider)
        root = logging.getLogger()
        for handler in root.handlers:  # stderr keeps its own level when the root level drops
            if handler.level == logging.NOTSET:
                handler.setLevel(root.level)
        root.addHandler(self.log_handler)
        self._set_export_level(logging.DEBUG if self.debug else logging.INFO)

    def _set_export_level(self, level: int) -> None:
        assert self.log_handler is not None
        self.log_handler.setLevel(level)
        root = logging.getLogger()
        root.setLevel(min(level, *(h.level or level for h in root.handlers)))

    def set_otlp_log_level(self, level: str) -> None:
        """Apply the server's level for exported logs; ``--debug`` keeps them at debug."""
        self.otlp_log_level = level
        try:
            numeric = parse_level(level)
        except LogLevelError:
            log.warning("invalid OTLP log level from server", extra={"level": level})
            return
        if self.log_handler is not None and not self.debug:
            self._set_export_level(numeric)

    def watch_certificate(self, not_after: Callable[[], datetime | None]) -> None:
        """``monitor.ssl_earliest_cert_expiry``: the client certificate's notAfter (Unix s)."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            when = not_after()
            return [] if when is None else [Observation(when.timestamp())]

        self.meter.create_observable_gauge(
            "monitor.ssl_earliest_cert_expiry", callbacks=[observe], unit="s"
        )

    def shutdown(self) -> None:
        """Flush and stop the exporters (bounded by the SDK's own timeouts)."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.logger_provider.shutdown()
