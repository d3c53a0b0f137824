"""Fixtures for agent tests: a test CA, a real HTTPS management stand-in, and AppConfigs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.certs_helper import TestCA
from agent.fake_management import FakeManagement, ManagementServer
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import ManagementClient
from ntpmon.agent.depenv import DeploymentEnv


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
