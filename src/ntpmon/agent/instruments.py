"""The ``monitor.client`` instruments that the probes record on OpenTelemetry's global meter
(agent.md §14), created once, on import.

OpenTelemetry keeps every proxy meter and proxy instrument that its global provider hands out,
so that a later ``set_meter_provider`` can reach them. ``get_meter(...).create_counter(...)`` on
every probe (as before) therefore grew the agent by ~600 bytes per NTP query, ~7 MB an hour
at 500 servers (docs/agent.md, Memory footprint). Instruments are meant to be made once and
shared, like loggers, so these are module-level.
"""

from __future__ import annotations

from opentelemetry import metrics

INSTRUMENTATION = "monitor.client"

METER = metrics.get_meter(INSTRUMENTATION)
SERVERS_CHECKED = METER.create_counter("monitor.servers_checked_total")
NTP_QUERIES_SENT = METER.create_counter("monitor.ntp_queries_sent_total")
LOCAL_CHECK_UP = METER.create_gauge("monitor.local_check_up")
LOCAL_CHECK_TIME = METER.create_gauge("monitor.local_check_time")
