"""OTLP/HTTP export with the agent's client certificate (agent.md §14), against a real collector
stand-in on loopback that requires that certificate (``ntpmon.testing.otlpreceiver``)."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.certs_helper import TestCA
from agent.conftest import TLS_NAME
from agent.fake_connect_api import FakeConnectApi
from agent.fake_management import ManagementServer
from agent.fake_monitor_api import FakeMonitorApi
from ntpmon.agent.cli.options import DevelKnobs
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.daemon.otlpexport import (
    TelemetrySwitchError,
    otlp_settings,
    telemetry_switch,
)
from ntpmon.agent.daemon.runner import MonitorOptions, run_monitor, telemetry_settings
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.daemon.telemetry import SHUTDOWN_SECONDS, Telemetry
from ntpmon.agent.transport import RPCSettings
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.testing.otlpreceiver import OtlpReceiver

pytestmark = pytest.mark.timeout(90)
FAILING = "telemetry export failing; not logged again until it recovers"


@pytest.fixture(autouse=True)
def _restore_root_logger(restore_root_logger: None) -> None:
    """Telemetry adjusts the process's root logger, as the agent wants; tests share a process."""


def closed_port() -> int:
    """A loopback port where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_telemetry(cfg: AppConfig, environ: dict[str, str]) -> Telemetry:
    """The Telemetry ``monitor`` builds for ``cfg`` after its gates."""
    return Telemetry(cfg.env.value, otlp=telemetry_settings(cfg, MonitorOptions(), environ))


# -- where it goes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "host"),
    [
        (DeploymentEnv.PROD, "api-buzz.mon.ntppool.dev"),
        (DeploymentEnv.TEST, "api-buzz.test.mon.ntppool.dev"),
        (DeploymentEnv.DEVEL, "api-buzz.devel.mon.ntppool.dev"),
    ],
)
def test_defaults_are_the_environments_collector_with_the_agents_certificate(
    env: DeploymentEnv, host: str, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("roots")
    settings = otlp_settings(
        env,
        {},
        client_cert=tmp_path / "cert.pem",
        client_key=tmp_path / "key.pem",
        ca_files=(tmp_path / "missing.pem", None, ca),
    )
    assert settings is not None
    assert sorted(settings.targets) == ["logs", "metrics", "traces"]
    for signal, target in settings.targets.items():
        assert target.endpoint == f"https://{host}:4318/v1/{signal}"
        assert target.ca_file == str(ca)  # the first monitor CA that exists
        assert (target.client_cert, target.client_key) == (
            str(tmp_path / "cert.pem"),
            str(tmp_path / "key.pem"),
        )
        assert target.timeout == 10.0 and dict(target.headers) == {}


def test_standard_variables_override_each_default(tmp_path: Path) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318/",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example/custom",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-a=1,x-b=two%20words",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-m=3",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/collector-ca.pem",
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE": "/etc/logs-cert.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/other-key.pem",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "nonsense",
    }
    settings = otlp_settings(
        DeploymentEnv.PROD,
        environ,
        client_cert=tmp_path / "cert.pem",
        client_key=tmp_path / "key.pem",
        ca_files=(),
    )
    assert settings is not None
    traces, metrics, logs = (settings.targets[s] for s in ("traces", "metrics", "logs"))
    assert traces.endpoint == "https://traces.example/custom"  # per signal: verbatim
    assert metrics.endpoint == "https://collector.example:4318/v1/metrics"
    assert dict(traces.headers) == {"x-a": "1", "x-b": "two words"}
    assert dict(metrics.headers) == {"x-m": "3"}  # the per-signal variable wins whole
    assert {t.ca_file for t in (traces, metrics, logs)} == {"/etc/collector-ca.pem"}
    assert (logs.client_cert, logs.client_key) == ("/etc/logs-cert.pem", "/etc/other-key.pem")
    assert traces.client_cert == str(tmp_path / "cert.pem")
    assert (traces.timeout, metrics.timeout) == (2.5, 10.0)


def test_switches_off(tmp_path: Path) -> None:
    def settings(environ: dict[str, str]) -> set[str] | None:
        found = otlp_settings(
            DeploymentEnv.PROD,
            environ,
            client_cert=tmp_path / "c",
            client_key=tmp_path / "k",
            ca_files=(),
        )
        return None if found is None else set(found.targets)

    assert settings({"OTEL_SDK_DISABLED": "true"}) is None
    assert settings({"OTEL_SDK_DISABLED": "false"}) == {"traces", "metrics", "logs"}
    assert settings({"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}) == {"metrics"}
    none = {f"OTEL_{s}_EXPORTER": "none" for s in ("TRACES", "METRICS", "LOGS")}
    assert settings(none) is None
    assert [telemetry_switch(v) for v in ("on", "OFF", "true", "0")] == [True, False, True, False]
    with pytest.raises(TelemetrySwitchError, match="expected on or off"):
        telemetry_switch("maybe")


# -- what arrives -----------------------------------------------------------------------------


def test_traces_metrics_and_logs_arrive_with_the_client_certificate(
    live_config: AppConfig, receiver: OtlpReceiver
) -> None:
    telemetry = agent_telemetry(live_config, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert telemetry.exporting
    with telemetry.span("monitor-run", {"ip_version": "v4"}):
        telemetry.tests_requested(4, 3)
        logging.getLogger("ntpmon.agent.daemon.worker").warning("batch went wrong")
    telemetry.shutdown()  # flushes every signal

    [(resource, span)] = [(r, s) for r, s in receiver.spans() if s.name == "monitor-run"]
    assert resource["service.name"] == "ntppool-agent"
    assert resource["deployment.environment"] == "devel"
    assert resource["deployment.environment.name"] == "devel"
    assert {kv.key: kv.value.string_value for kv in span.attributes} == {"ip_version": "v4"}
    assert "monitor.tests_requested_total" in receiver.metric_names()
    assert "batch went wrong" in receiver.log_bodies()
    assert {e.client_cn for e in receiver.exports} == {TLS_NAME}  # the state dir's cert.pem
    assert {e.content_type for e in receiver.exports} == {"application/x-protobuf"}
    assert receiver.refused == 0


def test_the_receiver_refuses_a_client_without_a_certificate(
    receiver: OtlpReceiver, test_ca: TestCA
) -> None:
    """So the test above proves the agent sent its certificate."""
    context = ssl.create_default_context(cadata=test_ca.pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", receiver.port, context=context, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn.request("POST", "/v1/traces", body=b"", headers={"Content-Type": "x"})
        conn.getresponse()
    conn.close()
    deadline = time.monotonic() + 5
    while receiver.refused == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.refused == 1 and receiver.exports == []


def test_per_signal_endpoint_headers_and_certificate_variables(
    live_config: AppConfig, receiver: OtlpReceiver, test_ca: TestCA, tmp_path: Path
) -> None:
    other = test_ca.issue("other-abc123.devel.mon.ntppool.dev")
    (tmp_path / "other-cert.pem").write_bytes(other.cert_pem)
    (tmp_path / "other-key.pem").write_bytes(other.key_pem)
    live_config.ca_path.unlink()  # trust comes from the variable alone
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{closed_port()}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-pool-token=abc",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(test_ca.write(tmp_path)),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(tmp_path / "other-cert.pem"),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tmp_path / "other-key.pem"),
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    telemetry = agent_telemetry(live_config, environ)
    with telemetry.span("monitor-run"):
        pass
    telemetry.shutdown()
    [export] = receiver.received("/v1/traces")
    assert export.headers["x-pool-token"] == "abc"
    assert export.client_cn == "other-abc123.devel.mon.ntppool.dev"
    assert receiver.received("/v1/metrics") == receiver.received("/v1/logs") == []


# -- never hurting the agent ------------------------------------------------------------------


def test_a_collector_that_is_down_costs_one_warning(
    live_config: AppConfig, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{closed_port()}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    telemetry = agent_telemetry(live_config, environ)
    assert telemetry.tracer_provider is not None
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    for batch in range(3):
        for _ in range(100):
            with telemetry.span("monitor.CheckHost"):
                pass
        assert time.monotonic() - started < 2 + batch * 2  # recording never waits on export
        telemetry.tracer_provider.force_flush()  # one failed export per batch
    telemetry.shutdown()
    assert time.monotonic() - started < 3 * 2 + SHUTDOWN_SECONDS + 2
    assert [r.getMessage() for r in caplog.records].count(FAILING) == 1
    [warning] = [r for r in caplog.records if r.getMessage() == FAILING]
    assert "127.0.0.1" in warning.error  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]


def test_a_collector_that_never_answers_does_not_hold_up_shutdown(
    live_config: AppConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        environ = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{silent.getsockname()[1]}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "60",
        }
        telemetry = agent_telemetry(live_config, environ)
        with telemetry.span("monitor-run"):
            telemetry.tests_requested(4, 1)
        started = time.monotonic()
        telemetry.shutdown()
        assert time.monotonic() - started < SHUTDOWN_SECONDS + 1
    assert "telemetry not flushed in time; the rest is dropped" in caplog.messages


def test_an_outage_is_logged_once_and_its_end_once(
    live_config: AppConfig, receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    telemetry = agent_telemetry(live_config, environ)
    assert telemetry.tracer_provider is not None
    caplog.set_level(logging.INFO)
    receiver.status = 400  # refused: not retried, one failed export per flush
    for _ in range(3):
        with telemetry.span("monitor-run"):
            pass
        telemetry.tracer_provider.force_flush()
    receiver.status = 200
    with telemetry.span("monitor-run"):
        pass
    telemetry.tracer_provider.force_flush()
    telemetry.shutdown()
    messages = caplog.messages
    assert messages.count(FAILING) == 1
    assert messages.count("telemetry export recovered") == 1
    assert messages.index(FAILING) < messages.index("telemetry export recovered")
    assert len(receiver.received("/v1/traces")) == 4


# -- monitor: after the certificate gate, and the off switch ----------------------------------


@pytest.fixture
def approved(
    make_config: Callable[..., AppConfig], mgmt: ManagementServer, tmp_path: Path
) -> AppConfig:
    """A monitor that passes every gate (key, certificate from the stand-in, JWT)."""
    mgmt.state.config_doc = {
        "name": "otlp",
        "tls_name": TLS_NAME,
        "ipv4": {"status": "testing", "ip": "127.0.0.1"},
        "ipv6": {"status": "", "ip": ""},
    }
    mgmt.state.token_status = 200
    mgmt.state.token_doc = {"access_token": "jwt", "token_type": "Bearer", "expires_in": 3600}
    cfg = make_config(state_dir=tmp_path / "otlp")
    cfg.set_api_key("key-1")
    return cfg


@pytest.mark.parametrize("switch", ["on", "off"])
def test_monitor_exports_by_default_and_not_when_switched_off(
    switch: str,
    approved: AppConfig,
    monitor_api: FakeMonitorApi | FakeConnectApi,
    responders: list[NTPResponder],
    receiver: OtlpReceiver,
) -> None:
    opts = MonitorOptions(
        once=True,
        ipv6=False,
        knobs=DevelKnobs(responders[0].port, True),
        telemetry=telemetry_switch(switch),
        rpc=RPCSettings(monitor_api.protocol),
    )
    environ = {"DEVEL_API_SERVER": monitor_api.url, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    run_monitor(approved, opts, Scope(), environ=environ)
    assert monitor_api.servicer.count("SubmitResults") == 1
    if switch == "off":
        assert receiver.connections == 0
        return
    names = {span.name for _, span in receiver.spans()}
    assert {"monitor-run", "monitor.CheckHost"} <= names
    assert "monitor.v2.MonitorService/SubmitResults" in names
    assert "monitor.servers_checked_total" in receiver.metric_names()
    assert {e.client_cn for e in receiver.exports} == {TLS_NAME}
