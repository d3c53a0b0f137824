"""The probes record through the instruments they are handed (agent.md §11.2, §12, §14).

Real probes against loopback responders, read back through the agent's own Telemetry with the
SDK's in-memory reader and exporter plugged in: what arrives there is what an OTLP endpoint
would get. (The probes used to record on OpenTelemetry's global providers, which the agent
never installs, so none of this was exported.)
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest

from ntpmon.agent.daemon.localok import LocalOK
from ntpmon.ntp.check import ProbeConfig, check_host
from ntpmon.testing.ntpserver import NTPResponder, ResponderSettings
from ntpmon.testing.otel import RecordingTelemetry

from .conftest import config_for, loopback_config, no_sleep, responder_farm


@pytest.fixture
def recording() -> Iterator[RecordingTelemetry]:
    telemetry = RecordingTelemetry()
    yield telemetry
    telemetry.shutdown()


def test_check_host_counts_the_server_and_every_query_and_spans_the_probe(
    responder: NTPResponder, recording: RecordingTelemetry
) -> None:
    family = f"ipv{ipaddress.ip_address(responder.host).version}"
    cfg = loopback_config(responder, samples=3)
    _status, response, error = check_host(
        responder.host, cfg, sleep=no_sleep, instruments=recording.instruments
    )
    assert error is None and response is not None
    assert responder.requests == 3
    assert recording.points("monitor.servers_checked_total") == [({"ip_version": family}, 1)]
    assert recording.points("monitor.ntp_queries_sent_total") == [({"ip_version": family}, 3)]
    [span] = recording.spans("monitor.CheckHost")
    assert dict(span.attributes or {}) == {"ip": responder.host, "ip_version": family, "samples": 3}
    assert recording.resource()["service.name"] == "ntppool-agent"
    assert recording.resource()["deployment.environment"] == "devel"


def test_a_kiss_ends_the_probe_so_fewer_queries_are_counted(
    responder: NTPResponder, recording: RecordingTelemetry
) -> None:
    responder.configure(kiss="RATE")
    cfg = loopback_config(responder, samples=3)
    _status, _response, error = check_host(
        responder.host, cfg, sleep=no_sleep, instruments=recording.instruments
    )
    assert error == "RATE"
    [(_attrs, sent)] = recording.points("monitor.ntp_queries_sent_total")
    assert sent == responder.requests == 1
    assert len(recording.spans("monitor.CheckHost")) == 1


def test_a_filtered_address_is_counted_but_never_queried(recording: RecordingTelemetry) -> None:
    _status, _response, error = check_host(
        "10.1.2.3", ProbeConfig(samples=3), instruments=recording.instruments
    )
    assert error == "private address"
    assert recording.points("monitor.servers_checked_total") == [({"ip_version": "ipv4"}, 1)]
    assert recording.points("monitor.ntp_queries_sent_total") == []
    assert recording.spans("monitor.CheckHost") == []


def test_local_check_records_its_gauges_per_host_and_its_spans(
    recording: RecordingTelemetry,
) -> None:
    answers = [ResponderSettings(), ResponderSettings(offset=0.05), ResponderSettings()]
    with responder_farm(answers) as farm:
        hosts = [r.host for r in farm]
        cfg = config_for(farm)
        local_ok = LocalOK(lambda: cfg, 4, instruments=recording.instruments, sleep=no_sleep)
        before = time.time()
        assert local_ok.check() is True  # two of three within 10 ms
        after = time.time()
    up = {(a["host"], a["ip_version"]): v for a, v in recording.points("monitor.local_check_up")}
    assert up == {(hosts[0], "v4"): 1, (hosts[1], "v4"): 0, (hosts[2], "v4"): 1}
    started = recording.points("monitor.local_check_time")
    assert sorted(a["host"] for a, _ in started) == hosts
    assert all(a["ip_version"] == "v4" and before <= v <= after for a, v in started)  # Unix s
    assert recording.points("monitor.servers_checked_total") == [({"ip_version": "ipv4"}, 3)]
    assert recording.points("monitor.ntp_queries_sent_total") == [({"ip_version": "ipv4"}, 3)]
    [update] = recording.spans("localcheck-update")
    checks = recording.spans("monitor.CheckHost")
    assert sorted((s.attributes or {})["name"] for s in checks) == hosts  # the base-check name
    for span in checks:
        assert span.parent is not None and span.parent.span_id == update.context.span_id
        attrs = span.attributes or {}
        assert attrs["ip"] == attrs["name"] and attrs["ip_version"] == "ipv4"
        assert attrs["samples"] == 1


def test_without_instruments_nothing_is_recorded(responder: NTPResponder) -> None:
    """The ``check`` command and tests probe with the default no-op instruments."""
    recording = RecordingTelemetry()  # present, but not handed to the probe
    try:
        _status, _response, error = check_host(responder.host, loopback_config(responder))
        assert error is None
        assert recording.metrics() == {} and recording.spans() == []
    finally:
        recording.shutdown()
