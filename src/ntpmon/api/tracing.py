"""OpenTelemetry spans per RPC (api.md §12.3): parent context from the agent's metadata.

Tracing is off (a no-op tracer provider) unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; then
spans go to the OTLP exporter. The provider belongs to the server, not to module state.

Off means free: OpenTelemetry's no-op tracer still parses the agent's trace headers and
attaches a context per span (about 8 us per RPC, a few per cent of a batch), so with the no-op
provider :class:`RpcTracer` hands out shared do-nothing spans instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Status, StatusCode

SERVICE_NAME = "monitor-api"


class SpanHandle:
    """The current RPC span with helpers for the attributes the spec names."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def fail(self, code: str, message: str) -> None:
        self.span.set_status(Status(StatusCode.ERROR, f"{code}: {message}"))


class _NoSpan(SpanHandle):
    """The span of an RPC when tracing is off: attributes and status go nowhere."""

    def __init__(self) -> None:
        super().__init__(trace.INVALID_SPAN)

    def set(self, key: str, value: Any) -> None:
        pass

    def fail(self, code: str, message: str) -> None:
        pass


class RpcTracer:
    """Creates one span per RPC, child of the W3C context the agent sent."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.provider = provider or trace.NoOpTracerProvider()
        self._tracer = self.provider.get_tracer("ntpmon.api")
        self.enabled = not isinstance(self.provider, trace.NoOpTracerProvider)
        self._no_span = nullcontext(_NoSpan())  # stateless, so one serves every call

    def span(
        self, method: str, metadata: Mapping[str, str], mon_id: str
    ) -> AbstractContextManager[SpanHandle]:
        """The RPC's span (a shared no-op one when tracing is off)."""
        if not self.enabled:
            return self._no_span
        return self._rpc_span(method, metadata, mon_id)

    @contextmanager
    def _rpc_span(
        self, method: str, metadata: Mapping[str, str], mon_id: str
    ) -> Iterator[SpanHandle]:
        parent = extract(dict(metadata))
        with self._tracer.start_as_current_span(
            f"{SERVICE_NAME}/{method}",
            context=parent,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            span.set_attribute("monitor_ip", mon_id)
            if "user-agent" in metadata:
                span.set_attribute("User-Agent", metadata["user-agent"])
            yield SpanHandle(span)

    def child(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        """A child span of the current one (nothing when tracing is off)."""
        if not self.enabled:
            return nullcontext()
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def tracer_from_environment(deploy_env: str, environ: Mapping[str, str] | None = None) -> RpcTracer:
    """An OTLP-exporting tracer when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else a no-op."""
    environ = os.environ if environ is None else environ
    if not environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return RpcTracer()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": SERVICE_NAME, "deployment.environment": deploy_env})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return RpcTracer(provider)
