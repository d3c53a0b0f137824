"""What the probes record (agent.md §11.2, §12, §14): the ``monitor.client`` probe instruments and
the tracer for the ``monitor.CheckHost`` and ``localcheck-update`` spans, in one object that the
agent's :class:`~ntpmon.agent.daemon.telemetry.Telemetry` builds and hands down to the probe code.

Why handed down, not global: the Telemetry owns its providers (tests and several agents in one
process must not share state), so anything recorded on OpenTelemetry's *global* providers, which
nobody installs, is never exported. The probes used to do just that. Installing the Telemetry's
providers globally instead would tie every Telemetry in the process to the first one (the API
lets the global providers be set once) and hide who records where; passing the instruments makes
the dependency visible and lets each test plug in its own readers.

Why one object made once: an OpenTelemetry meter keeps every instrument it hands out, so making
a counter per probe grew the agent by ~600 bytes per NTP query, ~7 MB an hour at 500 servers
(docs/agent.md, Memory footprint). :meth:`ProbeInstruments.create` runs once per Telemetry.

Only the OpenTelemetry API is imported here; the SDK stays unloaded when nothing is exported.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.metrics import Counter, Meter, NoOpMeter
from opentelemetry.metrics import _Gauge as Gauge  # the API exports the sync gauge type only so

INSTRUMENTATION = "monitor.client"


@dataclass(frozen=True, slots=True)
class ProbeInstruments:
    """The probes' tracer and instruments (names and attributes: agent.md §14).

    ``servers_checked`` and ``ntp_queries_sent`` take ``ip_version`` = ``ipv4``/``ipv6``; the
    local check gauges take ``host`` and ``ip_version`` = ``v4``/``v6`` (two styles, kept for
    upstream's dashboards).
    """

    tracer: trace.Tracer
    servers_checked: Counter
    ntp_queries_sent: Counter
    local_check_up: Gauge
    local_check_time: Gauge

    @classmethod
    def create(cls, meter: Meter, tracer: trace.Tracer) -> ProbeInstruments:
        """The instruments on ``meter``; call once per meter and share the result."""
        return cls(
            tracer=tracer,
            servers_checked=meter.create_counter("monitor.servers_checked_total"),
            ntp_queries_sent=meter.create_counter("monitor.ntp_queries_sent_total"),
            local_check_up=meter.create_gauge("monitor.local_check_up"),
            local_check_time=meter.create_gauge("monitor.local_check_time"),
        )


NO_PROBE_INSTRUMENTS = ProbeInstruments.create(NoOpMeter(INSTRUMENTATION), trace.NoOpTracer())
"""Record nothing and keep nothing: for probes outside ``monitor`` (the ``check`` command, tests).

Immutable and stateless (the API's no-op instruments and tracer), so sharing it is safe.
"""
