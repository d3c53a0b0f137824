"""Workers against real NTP responders and a scripted service over real mTLS, on both RPC
protocols (§10)."""

from __future__ import annotations

import ipaddress
import logging
import time
from contextlib import AbstractContextManager

import grpc
import pytest

from agent.certs_helper import TestCA
from agent.fake_connect_api import FakeConnectApi
from agent.fake_monitor_api import FakeMonitorApi
from agent.threads_helper import in_thread, wait_for
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.daemon.telemetry import Telemetry
from ntpmon.agent.daemon.worker import Worker, WorkerOptions
from ntpmon.agent.transport import RPCSettings, open_monitor_client
from ntpmon.agent.transport.base import MonitorClient, RPCError
from ntpmon.ntp.instruments import ProbeInstruments
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.testing.otel import RecordingTelemetry

pytestmark = pytest.mark.timeout(60)
Api = FakeMonitorApi | FakeConnectApi


def client_for(cfg: AppConfig, api: Api, **options: object) -> MonitorClient:
    """A client speaking the fake's protocol."""
    return open_monitor_client(RPCSettings(api.protocol), cfg, api.url, **options)


def make_worker(cfg: AppConfig, api: Api, port: int, *, once: bool) -> Worker:
    telemetry = Telemetry("devel")
    client = client_for(cfg, api, tracer=telemetry.tracer)
    options = WorkerOptions(once=once, port=port, allow_loopback=True)
    return Worker(4, cfg, client, telemetry, options)


def running(worker: Worker) -> AbstractContextManager[Scope]:
    return in_thread(worker.run)


def test_once_probes_every_server_and_submits_v4_batch(
    live_config: AppConfig, monitor_api: Api, responders: list[NTPResponder]
) -> None:
    worker = make_worker(live_config, monitor_api, responders[0].port, once=True)
    worker.run(Scope())
    calls = monitor_api.servicer.calls
    submit = [c for c in calls if c.method == "SubmitResults"]
    assert len(submit) == 1
    req = submit[0].request
    assert req.version == 4 and req.mon_id == "127.0.0.1"
    assert req.batch_id == monitor_api.servicer.issued_batches[0]
    by_ip = {bytes(s.ip_bytes): s for s in req.list}
    assert set(by_ip) == {ipaddress.ip_address(r.host).packed for r in responders}
    for ip, status in by_ip.items():
        assert status.ticket == b"ticket-" + ip
        assert not status.no_response and status.error == "" and status.stratum == 2
        # same clock on both ends: the measured offset is bounded by half the round trip
        assert abs(status.offset.ToNanoseconds()) <= status.rtt.ToNanoseconds() // 2 + 1000
    for responder in responders:
        assert responder.requests >= 2  # the local clock check, then the batch
    meta = submit[0].metadata
    assert meta["user-agent"].startswith("ntppool-agent/v")
    assert meta["authorization"] == "Bearer test-key"  # no JWT endpoint: API key fallback
    assert all("traceparent" in c.metadata for c in calls)  # every RPC, GetConfig too
    # the batch's RPCs share the trace of its monitor-run span
    gs = next(c for c in calls if c.method == "GetServers").metadata["traceparent"]
    assert gs.split("-")[1] == meta["traceparent"].split("-")[1]
    assert "agent1-abc123.devel.mon.ntppool.dev" in submit[0].client_cn


def test_refused_batch_is_logged_with_batch_id_and_next_batch_goes_on(
    live_config: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor_api.servicer.script.submit = ["refuse", "ok"]
    worker = make_worker(live_config, monitor_api, responders[0].port, once=False)
    with caplog.at_level(logging.INFO), running(worker):
        wait_for(lambda: worker.batches >= 1)
    refused = [r for r in caplog.records if r.getMessage() == "SubmitResults refused"]
    assert (
        refused
        and refused[0].__dict__["batchID"] == monitor_api.servicer.issued_batches[0].decode()
    )
    assert "failed_precondition" in refused[0].__dict__["error"]
    submits = [c for c in monitor_api.servicer.calls if c.method == "SubmitResults"]
    assert submits[1].request.batch_id == monitor_api.servicer.issued_batches[1]


def test_already_exists_counts_as_success(
    live_config: AppConfig, monitor_api: Api, responders: list[NTPResponder]
) -> None:
    monitor_api.servicer.script.submit = ["exists"]
    worker = make_worker(live_config, monitor_api, responders[0].port, once=True)
    worker.run(Scope())
    assert worker.batches == 1


@pytest.mark.parametrize(
    ("errors", "batches"),
    [
        ([grpc.StatusCode.INTERNAL], None),
        ([grpc.StatusCode.PERMISSION_DENIED], None),
        ([], [[]]),  # no work
    ],
)
def test_get_servers_errors_and_empty_batches_back_off(
    live_config: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
    errors: list[grpc.StatusCode],
    batches: list[list[bytes]] | None,
) -> None:
    monitor_api.servicer.script.get_servers_errors = list(errors)
    if batches is not None:
        monitor_api.servicer.script.servers = batches
    worker = make_worker(live_config, monitor_api, responders[0].port, once=False)
    with running(worker):
        wait_for(lambda: monitor_api.servicer.count("GetServers") >= 1)
        time.sleep(1.5)
    # back-off starts at 3 s (±30 %): one attempt in 1.5 s, no tight loop
    assert monitor_api.servicer.count("GetServers") == 1


def test_api_down_backs_off(
    live_config: AppConfig, responders: list[NTPResponder], caplog: pytest.LogCaptureFixture
) -> None:
    client = open_monitor_client(RPCSettings(), live_config, "https://127.0.0.1:9")
    worker = Worker(
        4,
        live_config,
        client,
        Telemetry("devel"),
        WorkerOptions(port=responders[0].port, allow_loopback=True),
    )
    with caplog.at_level(logging.WARNING), running(worker):
        time.sleep(1.5)
    fails = [r for r in caplog.records if r.getMessage() == "GetConfig failed"]
    assert len(fails) == 1  # next GetConfig try only after 10 s


def test_renewed_certificate_rebuilds_the_channel(
    live_config: AppConfig, monitor_api: Api, test_ca: TestCA
) -> None:
    client = client_for(live_config, monitor_api)
    client.get_config("127.0.0.1")
    renewed = test_ca.issue("renewed-abc123.devel.mon.ntppool.dev")
    live_config._store_certificate(renewed.cert_pem, renewed.key_pem)
    client.get_config("127.0.0.1")
    names = [c.client_cn for c in monitor_api.servicer.calls]
    assert "agent1-abc123" in names[0] and "renewed-abc123" in names[1]


def test_expired_certificate_is_refused_by_the_server(
    live_config: AppConfig, monitor_api: Api, test_ca: TestCA
) -> None:
    from datetime import timedelta

    expired = test_ca.issue(
        "old-abc123.devel.mon.ntppool.dev", lifetime=timedelta(hours=1), start=-timedelta(hours=3)
    )
    live_config._store_certificate(expired.cert_pem, expired.key_pem)
    client = client_for(live_config, monitor_api)
    with pytest.raises(RPCError, match="unavailable"):
        client.get_config("127.0.0.1")
    assert monitor_api.servicer.count("GetConfig") == 0


def test_metrics_count_rpcs_and_results_by_outcome(
    live_config: AppConfig, monitor_api: Api, responders: list[NTPResponder]
) -> None:
    responders[2].configure(kiss="RATE")
    recording = RecordingTelemetry()
    telemetry = recording.telemetry
    telemetry.watch_certificate(lambda: live_config.certificate().not_after)
    client = client_for(live_config, monitor_api, on_call=telemetry.rpc_done)
    options = WorkerOptions(once=True, port=responders[0].port, allow_loopback=True)
    Worker(4, live_config, client, telemetry, options).run(Scope())
    assert recording.resource()["service.name"] == "ntppool-agent"
    points = recording.metrics()
    rpcs = {(a["type"], a["status_code"]): v for a, v in points["monitor.rpc_requests_total"]}
    assert rpcs[("submitResults", "success")] == 1 and rpcs[("getServers", "success")] == 1
    assert {a["type"] for a, _ in points["monitor.rpc_duration"]} >= {"getServers", "submitResults"}
    assert points["monitor.tests_requested_total"] == [({"ip_version": "v4"}, 3)]
    completed = {a["result"]: v for a, v in points["monitor.tests_completed_total"]}
    assert completed == {"ok": 2, "error": 1}
    expiry = points["monitor.ssl_earliest_cert_expiry"][0][1]
    assert expiry == live_config.certificate().not_after.timestamp()
    recording.shutdown()


def test_probe_metrics_and_spans_reach_the_telemetry(
    live_config: AppConfig, monitor_api: Api, responders: list[NTPResponder]
) -> None:
    """The worker hands its Telemetry's instruments to the local clock check and the probes.

    The fake API's config has samples=1 and the three responders as both base checks and work.
    """
    recording = RecordingTelemetry()
    telemetry = recording.telemetry
    client = client_for(live_config, monitor_api, tracer=telemetry.tracer)
    options = WorkerOptions(once=True, port=responders[0].port, allow_loopback=True)
    Worker(4, live_config, client, telemetry, options).run(Scope())
    assert monitor_api.servicer.count("SubmitResults") == 1
    hosts = sorted(r.host for r in responders)
    # three local clock check probes, then three batch probes, one query each
    assert recording.points("monitor.servers_checked_total") == [({"ip_version": "ipv4"}, 6)]
    assert recording.points("monitor.ntp_queries_sent_total") == [({"ip_version": "ipv4"}, 6)]
    up = {(a["host"], a["ip_version"]): v for a, v in recording.points("monitor.local_check_up")}
    assert up == {(host, "v4"): 1 for host in hosts}
    checked_at = recording.points("monitor.local_check_time")
    assert sorted(a["host"] for a, _ in checked_at) == hosts
    [update] = recording.spans("localcheck-update")
    [run] = recording.spans("monitor-run")
    for span in recording.spans("monitor.CheckHost"):  # in pool threads, under their caller
        caller = update if "name" in (span.attributes or {}) else run
        assert span.parent is not None and span.parent.span_id == caller.context.span_id
        assert span.context.trace_id == caller.context.trace_id
    checks = [dict(s.attributes or {}) for s in recording.spans("monitor.CheckHost")]
    local = sorted(a.pop("name") for a in checks if "name" in a)  # the base-check host name
    assert local == hosts
    assert sorted(checks, key=lambda a: str(a["ip"])) == [
        {"ip": host, "ip_version": "ipv4", "samples": 1} for host in hosts for _ in (1, 2)
    ]
    recording.shutdown()


def test_a_failing_probe_does_not_lose_the_batch(
    live_config: AppConfig, monitor_api: Api, responders: list[NTPResponder]
) -> None:
    from ntpmon.agent.daemon.worker import default_probe

    bad_ip = ipaddress.ip_address(responders[0].host).packed

    def probe(
        server: pb.Server, cfg: CheckConfig, instruments: ProbeInstruments
    ) -> pb.ServerStatus | None:
        if server.ip_bytes == bad_ip:
            raise RuntimeError("probe bug")
        return default_probe(server, cfg, instruments)

    telemetry = Telemetry("devel")
    options = WorkerOptions(once=True, port=responders[0].port, allow_loopback=True)
    client = client_for(live_config, monitor_api)
    Worker(4, live_config, client, telemetry, options, probe=probe).run(Scope())
    submit = next(c for c in monitor_api.servicer.calls if c.method == "SubmitResults")
    assert len(submit.request.list) == len(responders) - 1
