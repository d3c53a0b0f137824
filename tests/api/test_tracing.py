"""Tracing off costs nothing per RPC; on, it records the span tree (see test_operations)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ntpmon.api.tracing import RpcTracer, tracer_from_environment

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_off_without_an_endpoint_attaches_no_context():
    tracer = tracer_from_environment("devel", environ={})
    assert not tracer.enabled
    with tracer.span("GetServers", {"traceparent": PARENT}, "192.0.2.1") as span:
        span.set("monitor_name", "m")
        span.fail("NOT_FOUND", "no such monitor")
        with tracer.child("db.get_servers"):
            assert trace.get_current_span() is trace.INVALID_SPAN


def test_on_records_the_rpc_span_under_the_agents_parent_and_its_children():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = RpcTracer(provider)
    assert tracer.enabled
    with tracer.span("GetServers", {"traceparent": PARENT}, "192.0.2.1") as span:
        span.set("monitor_name", "m")
        with tracer.child("db.get_servers"):
            pass
    child, rpc = exporter.get_finished_spans()
    assert rpc.name == "monitor-api/GetServers"
    assert format(rpc.context.trace_id, "032x") == PARENT.split("-")[1]
    assert rpc.attributes["monitor_name"] == "m"
    assert rpc.attributes["monitor_ip"] == "192.0.2.1"
    assert child.parent.span_id == rpc.context.span_id
