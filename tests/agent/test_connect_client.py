"""The Connect client against a Connect server over real TLS on loopback (agent.md §9.2): the
headers the Go agent sends, every error mapping, the one retry, connection reuse and flush,
timeouts, and which CA it trusts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.certs_helper import TestCA
from agent.fake_connect_api import FakeConnectApi, Fault
from agent.fake_monitor_api import Script
from ntpmon import __version__
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.transport import RPCSettings, open_monitor_client
from ntpmon.agent.transport.base import MonitorClient, RPCError
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.otel import RecordingTelemetry

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api(test_ca: TestCA) -> Iterator[FakeConnectApi]:
    issued = test_ca.issue("api.devel.mon.ntppool.dev", server=True)
    script = Script(config=pb.GetConfigResponse(samples=3), servers=[[b"\x7f\0\0\1"]])
    with FakeConnectApi(script, issued.cert_pem, issued.key_pem, test_ca.pem) as server:
        yield server


def client(cfg: AppConfig, api: FakeConnectApi, **options: object) -> MonitorClient:
    return open_monitor_client(RPCSettings("connect"), cfg, api.url, **options)


def test_a_call_carries_exactly_the_go_agents_headers(
    live_config: AppConfig, api: FakeConnectApi
) -> None:
    recording = RecordingTelemetry()
    reply = client(live_config, api, tracer=recording.telemetry.tracer).get_config("127.0.0.1")
    assert reply.samples == 3
    [seen] = api.seen
    assert seen.path == "/monitor.v2.MonitorService/GetConfig"
    headers = seen.headers
    assert headers["content-type"] == "application/proto"
    assert headers["connect-protocol-version"] == "1"
    assert headers["connect-timeout-ms"] == "35000"  # GetConfig's own deadline
    assert headers["user-agent"] == f"ntppool-agent/v{__version__}"
    assert headers["authorization"] == f"Bearer {live_config.bearer()}"
    [span] = recording.spans("monitor.v2.MonitorService/GetConfig")
    ctx = span.context
    flags = int(ctx.trace_flags)
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
    assert api.servicer.calls[0].client_cn.startswith("CN=agent1-abc123")
    recording.shutdown()


def test_batches_round_trip_and_the_call_deadline_is_sixty_seconds(
    live_config: AppConfig, api: FakeConnectApi
) -> None:
    rpc = client(live_config, api)
    batch = rpc.get_servers("127.0.0.1")
    assert [s.ip_bytes for s in batch.servers] == [b"\x7f\0\0\1"]
    request = pb.SubmitResultsRequest(version=4, mon_id="127.0.0.1", batch_id=batch.batch_id)
    assert rpc.submit_results(request) is True
    assert api.servicer.calls[-1].request == request
    assert {s.headers["connect-timeout-ms"] for s in api.seen} == {"60000"}


def test_already_exists_counts_as_success_and_other_codes_come_from_the_json(
    live_config: AppConfig, api: FakeConnectApi
) -> None:
    rpc = client(live_config, api)
    api.servicer.script.submit = ["exists", "refuse"]
    request = pb.SubmitResultsRequest(version=4, mon_id="127.0.0.1", batch_id=b"b")
    assert rpc.submit_results(request) is True
    with pytest.raises(RPCError) as refused:
        rpc.submit_results(request)
    assert refused.value.code == "failed_precondition"
    assert str(refused.value) == "SubmitResults: failed_precondition: batch refused"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "code", "message"),
    [
        (401, "text/plain; charset=utf-8", b"Unauthorized\n", "unauthenticated", "Unauthorized"),
        (400, "text/plain", b"", "internal", "HTTP 400 Bad Request"),
        (403, "text/html", b"<h1>no</h1>", "permission_denied", "<h1>no</h1>"),
        (404, "text/plain", b"404 page not found", "unimplemented", "404 page not found"),
        (429, "text/plain", b"", "unavailable", "HTTP 429 Too Many Requests"),
        (502, "text/html", b"bad gateway", "unavailable", "bad gateway"),
        (503, "text/plain", b"", "unavailable", "HTTP 503 Service Unavailable"),
        (504, "text/plain", b"", "unavailable", "HTTP 504 Gateway Timeout"),
        (500, "text/plain", b"boom", "unknown", "boom"),
        (418, "text/plain", b"", "unknown", "HTTP 418 I'm a Teapot"),
        (
            500,
            "application/json",
            b'{"code":"resource_exhausted","message":"slow down"}',
            "resource_exhausted",
            "slow down",
        ),
        (403, "application/json", b'{"code":"bogus","message":"m"}', "permission_denied", "m"),
        (503, "application/json", b"not json", "unavailable", "HTTP 503 Service Unavailable"),
    ],
)
def test_http_statuses_map_to_connect_codes(
    live_config: AppConfig,
    api: FakeConnectApi,
    status: int,
    content_type: str,
    body: bytes,
    code: str,
    message: str,
) -> None:
    api.faults.append(Fault("status", status, content_type, body))
    with pytest.raises(RPCError) as failed:
        client(live_config, api).get_servers("127.0.0.1")
    assert failed.value.code == code
    assert str(failed.value) == f"GetServers: {code}: {message}"
    assert len(api.seen) == 1  # HTTP answers are not retried


def test_connections_are_reused(live_config: AppConfig, api: FakeConnectApi) -> None:
    rpc = client(live_config, api)
    for _ in range(3):
        rpc.get_config("127.0.0.1")
    assert len({s.client_port for s in api.seen}) == 1


@pytest.mark.parametrize("status", [401, 403, 495, 496, 497])
def test_auth_and_certificate_statuses_flush_the_pool(
    live_config: AppConfig, api: FakeConnectApi, status: int
) -> None:
    rpc = client(live_config, api)
    rpc.get_config("127.0.0.1")
    api.faults.append(Fault("status", status))
    with pytest.raises(RPCError):
        rpc.get_config("127.0.0.1")
    rpc.get_config("127.0.0.1")
    first, refused, after = (s.client_port for s in api.seen)
    assert first == refused != after


def test_other_errors_keep_the_connection(live_config: AppConfig, api: FakeConnectApi) -> None:
    rpc = client(live_config, api)
    api.faults.append(Fault("status", 500))
    with pytest.raises(RPCError):
        rpc.get_config("127.0.0.1")
    rpc.get_config("127.0.0.1")
    assert len({s.client_port for s in api.seen}) == 1


def test_a_reset_connection_is_retried_once_on_a_new_connection(
    live_config: AppConfig, api: FakeConnectApi
) -> None:
    rpc = client(live_config, api)
    rpc.get_config("127.0.0.1")
    api.faults.append(Fault("reset"))
    assert rpc.get_config("127.0.0.1").samples == 3
    ports = [s.client_port for s in api.seen]
    assert len(ports) == 3 and ports[0] == ports[1] != ports[2]


def test_a_second_reset_gives_up(live_config: AppConfig, api: FakeConnectApi) -> None:
    api.faults.extend([Fault("reset"), Fault("reset")])
    with pytest.raises(RPCError) as failed:
        client(live_config, api).get_config("127.0.0.1")
    assert failed.value.code == "unavailable"
    assert len(api.seen) == 2


def test_refused_connection_is_unavailable_after_one_retry(live_config: AppConfig) -> None:
    rpc = open_monitor_client(RPCSettings(), live_config, "https://127.0.0.1:9")
    with pytest.raises(RPCError, match=r"^GetConfig: unavailable: ConnectionRefusedError"):
        rpc.get_config("127.0.0.1")


def test_the_call_deadline_holds_and_is_not_retried(
    live_config: AppConfig, api: FakeConnectApi
) -> None:
    api.faults.append(Fault("sleep", seconds=3.0))
    started = time.monotonic()
    with pytest.raises(RPCError) as failed:
        client(live_config, api, timeout=0.5).get_servers("127.0.0.1")
    assert time.monotonic() - started < 2.5
    assert failed.value.code == "deadline_exceeded"
    assert [s.headers["connect-timeout-ms"] for s in api.seen] == ["500"]


def test_rpc_ca_file_is_trusted_instead_of_the_system_roots(
    live_config: AppConfig, api: FakeConnectApi, test_ca: TestCA, tmp_path: Path
) -> None:
    """A pool whose config carries no ca.pem: --rpc-ca-file names the monitor CA."""
    live_config.ca_path.unlink()
    with pytest.raises(RPCError, match="no monitor CA"):
        client(live_config, api).get_config("127.0.0.1")
    ca = tmp_path / "monitor-ca.pem"
    ca.write_bytes(test_ca.pem)
    settings = RPCSettings("connect", rpc_ca_file=str(ca))
    assert open_monitor_client(settings, live_config, api.url).get_config("").samples == 3
    devel = RPCSettings("connect", ca_file=str(ca))  # make run: --ca-file serves both
    assert open_monitor_client(devel, live_config, api.url).get_config("").samples == 3


def test_an_untrusted_server_is_a_tls_error(
    live_config: AppConfig, api: FakeConnectApi, tmp_path: Path
) -> None:
    other = TestCA()
    ca = tmp_path / "other-ca.pem"
    ca.write_bytes(other.pem)
    settings = RPCSettings("connect", rpc_ca_file=str(ca))
    with pytest.raises(RPCError, match="unavailable: SSLCertVerificationError"):
        open_monitor_client(settings, live_config, api.url).get_config("")
    assert api.seen == []


def test_unknown_protocol_is_refused(live_config: AppConfig) -> None:
    with pytest.raises(RPCError, match="unknown RPC protocol 'http3'"):
        open_monitor_client(RPCSettings("http3"), live_config, "https://127.0.0.1:9")
