"""Without an OTLP endpoint the agent's spans come from a context-only tracer: they carry a
valid, sampled trace context like the SDK's (RPC metadata joins monitor-api's logs) and the
SDK stays unloaded (docs/agent.md, Memory footprint)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry import propagate, trace

from ntpmon.agent.daemon.telemetry import Telemetry


def test_nested_spans_continue_the_trace_with_fresh_span_ids() -> None:
    telemetry = Telemetry("devel")
    assert telemetry.tracer_provider is None and telemetry.meter_provider is None
    with telemetry.span("monitor-run") as outer:
        outer_ctx = outer.get_span_context()
        with telemetry.tracer.start_as_current_span("rpc", kind=trace.SpanKind.CLIENT) as inner:
            inner_ctx = inner.get_span_context()
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
    assert outer_ctx.is_valid and inner_ctx.is_valid
    assert inner_ctx.trace_id == outer_ctx.trace_id
    assert inner_ctx.span_id != outer_ctx.span_id
    assert carrier["traceparent"] == f"00-{inner_ctx.trace_id:032x}-{inner_ctx.span_id:016x}-01"
    with telemetry.span("next-batch") as other:
        assert other.get_span_context().trace_id != outer_ctx.trace_id  # a new trace
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing leaks out of the spans
    telemetry.rpc_done("GetServers", True, 0.01)  # the no-op instruments accept records
    telemetry.test_completed(4, "ok")
    telemetry.shutdown()


def test_exceptions_propagate_through_the_span() -> None:
    telemetry = Telemetry("devel")
    with pytest.raises(ValueError, match="boom"), telemetry.span("monitor-run"):
        raise ValueError("boom")
    assert trace.get_current_span() is trace.INVALID_SPAN


# a batch's worth of telemetry with no endpoint: spans, RPC metrics, and a probe (the local
# clock check and its check_host) recording through the Telemetry's probe instruments
NO_ENDPOINT = """
import sys
from ntpmon.agent.daemon.localok import LocalOK
from ntpmon.ntp.check import ProbeConfig
from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.testing.ntpserver import NTPResponder

t = Telemetry("devel")
with t.span("x"), NTPResponder("127.0.0.1") as server:
    cfg = ProbeConfig(samples=1, base_checks=("127.0.0.1",), port=server.port, allow_loopback=True)
    assert LocalOK(lambda: cfg, 4, instruments=t.probe_instruments).check()
    assert server.requests == 1
t.rpc_done("GetServers", True, 0.01)
print(any(m.startswith("opentelemetry.sdk") for m in sys.modules))
"""


def test_sdk_is_not_loaded_without_an_endpoint() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_ENDPOINT], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
