"""Fixtures for agent tests: a test CA, a real HTTPS management stand-in, and AppConfigs."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.certs_helper import TestCA
from agent.fake_connect_api import FakeConnectApi
from agent.fake_management import FakeManagement, ManagementServer
from agent.fake_monitor_api import FakeMonitorApi, Script
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.config.mgmt import ManagementClient
from ntpmon.api.runner import MonitorApiServer, ServerOptions
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.testing.otlpreceiver import OtlpReceiver


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture
def ca_file(test_ca: TestCA, tmp_path: Path) -> Path:
    return test_ca.write(tmp_path)


@pytest.fixture
def mgmt(test_ca: TestCA, tmp_path: Path) -> Iterator[ManagementServer]:
    """A running management stand-in; tests set its answers through ``.state``."""
    issued = test_ca.issue("api.devel.mon.ntppool.dev", server=True)
    cert, key = tmp_path / "mgmt-cert.pem", tmp_path / "mgmt-key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)

    def issue(tls_name: str) -> tuple[bytes, bytes, bytes]:
        client = test_ca.issue(tls_name or "client.devel.mon.ntppool.dev")
        return client.cert_pem, client.key_pem, test_ca.pem

    state = FakeManagement(issue_cert=issue)
    with ManagementServer(state, cert, key) as server:
        yield server


@pytest.fixture
def make_config(tmp_path: Path, mgmt: ManagementServer, ca_file: Path) -> Callable[..., AppConfig]:
    """AppConfig factory on a per-test state dir, talking to the stand-in."""

    def make(
        env: DeploymentEnv = DeploymentEnv.DEVEL,
        state_dir: Path | None = None,
        runtime_dir: str | None = None,
    ) -> AppConfig:
        client = ManagementClient(mgmt.url, ca_file=str(ca_file))
        return AppConfig(
            env, state_dir or tmp_path / "state", management=client, runtime_dir=runtime_dir
        )

    return make


@pytest.fixture
def responders() -> Iterator[list[NTPResponder]]:
    """Three NTP responders on 127.0.0.2-4, all on one (ephemeral) port."""
    first = NTPResponder("127.0.0.2", 0).start()
    started = [first]
    try:
        for host in ("127.0.0.3", "127.0.0.4"):
            started.append(NTPResponder(host, first.port).start())
        yield started
    finally:
        for responder in started:
            responder.stop()


@pytest.fixture(params=["connect", "grpc"])
def monitor_api(
    request: pytest.FixtureRequest, test_ca: TestCA, responders: list[NTPResponder]
) -> Iterator[FakeMonitorApi | FakeConnectApi]:
    """The scripted stand-in on each RPC protocol, handing out the responders as work."""
    issued = test_ca.issue("api.devel.mon.ntppool.dev", server=True)
    script = Script(
        config=pb.GetConfigResponse(
            samples=1,
            ip_bytes=ipaddress.ip_address("127.0.0.1").packed,
            base_checks=[r.host.encode() for r in responders],
        ),
        servers=[[ipaddress.ip_address(r.host).packed for r in responders]],
    )
    fake = FakeConnectApi if request.param == "connect" else FakeMonitorApi
    with fake(script, issued.cert_pem, issued.key_pem, test_ca.pem) as server:
        yield server


TLS_NAME = "agent1-abc123.devel.mon.ntppool.dev"


@pytest.fixture
def live_config(tmp_path: Path, test_ca: TestCA) -> AppConfig:
    """A registered, approved monitor on 127.0.0.1 with a certificate and the CA on disk."""
    cfg = AppConfig(DeploymentEnv.DEVEL, tmp_path / "live", management=None)
    cfg.env_dir.mkdir(parents=True)
    cfg.state_path.write_text(
        json.dumps(
            {
                "API": {"APIKey": "test-key"},
                "Data": {
                    "Name": "agent1",
                    "TLSName": TLS_NAME,
                    "IPv4": {"Status": "testing", "IP": "127.0.0.1"},
                    "IPv6": {"Status": "", "IP": None},
                },
            }
        )
    )
    issued = test_ca.issue(TLS_NAME)
    cfg.cert_path.write_bytes(issued.cert_pem)
    cfg.key_path.write_bytes(issued.key_pem)
    cfg.ca_path.write_bytes(test_ca.pem)
    cfg.load()
    return cfg


@pytest.fixture
def api_server(db: Engine, tmp_path: Path) -> Iterator[MonitorApiServer]:
    options = ServerOptions(
        engine=db,
        data_dir=tmp_path / "api-data",
        listen="127.0.0.1:0",
        management_listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        grace=2,
    )
    server = MonitorApiServer(options)
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver(test_ca: TestCA, tmp_path: Path) -> Iterator[OtlpReceiver]:
    """A collector stand-in on loopback that requires a client certificate from ``test_ca``."""
    issued = test_ca.issue("api-buzz.devel.mon.ntppool.dev", server=True)
    cert, key = tmp_path / "otlp-cert.pem", tmp_path / "otlp-key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    with OtlpReceiver(cert, key, test_ca.write(tmp_path)) as running:
        yield running


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """Puts the root logger's level and its handlers' levels back after a test that lets
    telemetry change them (the agent lowers them for log export; tests share a process)."""
    root = logging.getLogger()
    level, handlers = root.level, {h: h.level for h in root.handlers}
    yield
    root.setLevel(level)
    for handler, handler_level in handlers.items():
        handler.setLevel(handler_level)
