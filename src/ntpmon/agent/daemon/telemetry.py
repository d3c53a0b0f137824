"""OpenTelemetry for the agent (agent.md §14): traces, metrics and logs, exported over OTLP/HTTP
with the agent's client certificate to its environment's collector
(``ntpmon.agent.daemon.otlpexport`` decides where, or that nothing is exported); spans always
carry trace context into every RPC so monitor-api's logs can be joined with the agent's.

Providers are owned by the Telemetry object (not installed globally) so tests and several
agents in one process do not share state; the probe code gets the Telemetry's tracer and
instruments through :attr:`Telemetry.probe_instruments` (see ``ntpmon.ntp.instruments``).
The SDK and the exporters (docs/agent.md, Memory footprint) are loaded only when something
consumes their data: OTLP settings, a metric reader or a span exporter. Otherwise a
context-only tracer and the API's no-op meter do the job at no cost.

Export must never hurt the agent: queues are bounded (a collector that is down costs dropped
spans, not memory), every request has a timeout, failures are logged once per outage
(``ExportHealth``), and :meth:`Telemetry.shutdown` gives up after ``SHUTDOWN_SECONDS``.
"""

from __future__ import annotations

import logging
import random
import threading
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
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from ntpmon.agent.daemon.otlpexport import OtlpSettings

log = logging.getLogger(__name__)

SERVICE_NAME = "ntppool-agent"
QUEUE_SIZE = 512
"""Spans, and log records, waiting for export; more are dropped (the SDK's default is 2048)."""
SHUTDOWN_SECONDS = 5.0
"""How long the agent's exit waits for the last export; a collector that is down gets less."""


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

    ``otlp`` says what to export and where (None: nothing leaves the process).
    ``metric_reader`` and ``span_exporter`` add in-process consumers (tests read what the agent
    records through them); either one starts the SDK like OTLP settings do.
    """

    def __init__(
        self,
        env: str,
        *,
        otlp: OtlpSettings | None = None,
        metric_reader: MetricReader | None = None,
        span_exporter: SpanExporter | None = None,
        debug: bool = False,
        otlp_log_level: str = "",
    ) -> None:
        self.exporting = otlp is not None
        self.log_handler: logging.Handler | None = None
        self.logger_provider: LoggerProvider | None = None
        self.debug = debug
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.tracer: trace.Tracer = ContextOnlyTracer()
        self.meter: Meter = NoOpMeter(INSTRUMENTATION)
        if otlp is not None or metric_reader is not None or span_exporter is not None:
            self._start_sdk(env, otlp, metric_reader, span_exporter)
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
        self,
        env: str,
        otlp: OtlpSettings | None,
        metric_reader: MetricReader | None,
        span_exporter: SpanExporter | None,
    ) -> None:
        """The SDK's providers, with the OTLP/HTTP exporters ``otlp`` asks for."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create(
            {
                "service.name": SERVICE_NAME,
                "service.version": version(),
                "deployment.environment": env,  # the name upstream's dashboards use
                "deployment.environment.name": env,  # today's semantic conventions
            }
        )
        # no atexit flush: shutdown() is bounded, an exit without it must not wait on export
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        if span_exporter is not None:  # in-process: each span as it ends, no export thread
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        readers: list[MetricReader] = [] if metric_reader is None else [metric_reader]
        if otlp is not None:
            from ntpmon.agent.daemon.otlpexport import ExportHealth
            from ntpmon.agent.daemon.otlphttp import build_exporters

            exporters = build_exporters(otlp, ExportHealth())
            if exporters.spans is not None:
                self.tracer_provider.add_span_processor(
                    BatchSpanProcessor(exporters.spans, max_queue_size=QUEUE_SIZE)
                )
            if exporters.metrics is not None:
                readers.append(PeriodicExportingMetricReader(exporters.metrics))
            if exporters.logs is not None:
                self._start_log_export(resource, exporters.logs)
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, shutdown_on_exit=False
        )
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

    def _start_log_export(self, resource: Resource, exporter: LogRecordExporter) -> None:
        """Records also go to OTLP, at their own level (the server's choice, debug with --debug)."""
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        self.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, max_queue_size=QUEUE_SIZE)
        )
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
        """Flush and stop the exporters, waiting ``SHUTDOWN_SECONDS`` at most.

        The SDK would wait up to 30 s per signal for a collector that does not answer; the
        agent's exit (and its restart by systemd) must not. What is not sent by then is dropped
        with the process (the SDK's export threads are daemons).
        """
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
        providers = [
            p
            for p in (self.tracer_provider, self.meter_provider, self.logger_provider)
            if p is not None
        ]
        if not providers:
            return

        def stop_all() -> None:
            for provider in providers:
                provider.shutdown()

        stopper = threading.Thread(target=stop_all, name="otel-shutdown", daemon=True)
        stopper.start()
        stopper.join(SHUTDOWN_SECONDS)
        if stopper.is_alive():
            log.warning("telemetry not flushed in time; the rest is dropped")
