"""The management client against the real monitor-api (HTTPS, embedded CA, database on both
dialects): registration approved by the admin CLI, config with a certificate, the JWT, and a
revoked key. Fault injection (5xx, odd content types, request shapes) stays on the stand-in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jwt
import pytest
from sqlalchemy import Engine

from agent.real_api import admin
from ntpmon.agent.cli.setup import SetupRequest, run_setup
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementClient
from ntpmon.api.runner import MonitorApiServer

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.fixture
def registered(db: Engine, api_server: MonitorApiServer, tmp_path: Path) -> AppConfig:
    """``setup`` run to completion; the operator approves while it polls."""
    base = f"https://127.0.0.1:{api_server.ports['management']}"
    ca_file = tmp_path / "monitor-ca.pem"
    ca_file.write_text(api_server.ca.root_pem())
    cfg = AppConfig(
        DeploymentEnv.DEVEL,
        tmp_path / "state",
        management=ManagementClient(base, ca_file=str(ca_file)),
    )
    cfg.load()
    printed: list[str] = []

    def operator_approves(_seconds: float) -> None:
        match = re.search(r"/monitor/registration/([0-9A-Z]{26})", "".join(printed))
        assert match, printed
        admin(db, "registrations", "approve", match.group(1))

    run_setup(
        cfg,
        SetupRequest("agent-host", None, ipv4=True, ipv6=False),
        api_base=base,
        ca_file=str(ca_file),
        environ={},
        out=printed.append,
        sleep=operator_approves,
    )
    assert len(printed) == 1 and "Please visit the following URL" in printed[0]
    return cfg


def test_setup_stores_the_key(registered: AppConfig) -> None:
    key = registered.api_key()
    assert key
    assert json.loads(registered.state_path.read_text())["API"]["APIKey"] == key


def test_config_brings_identity_certificate_and_ca(
    registered: AppConfig, api_server: MonitorApiServer
) -> None:
    registered.load()
    data = registered.data()
    assert data.tls_name.startswith("agent-host-")
    assert data.tls_name.endswith(".devel.mon.ntppool.dev")
    assert registered.is_live(4) and str(data.ipv4.ip) == "127.0.0.1"
    assert data.ipv4.status == "testing"
    assert registered.have_certificate()
    assert registered.ca_path.read_text() == api_server.ca.root_pem()
    assert len(json.loads(registered.state_path.read_text())["DataSha"]) == 64
    cert = registered.cert_path.read_bytes()
    registered.load()  # a valid certificate is not replaced
    assert registered.cert_path.read_bytes() == cert


def test_jwt_names_the_monitor(registered: AppConfig, api_server: MonitorApiServer) -> None:
    registered.load()
    token = registered.jwt()
    assert registered.jwt() == token  # cached
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == registered.tls_name()
    assert claims["aud"] == "monitor-api"


def test_revoked_key_is_refused_and_kept_on_disk(registered: AppConfig, db: Engine) -> None:
    registered.load()
    key = registered.api_key()
    admin(db, "monitors", "delete", registered.tls_name())
    with pytest.raises(AuthorizationError):
        registered.load()
    assert registered.api_key() == ""
    assert json.loads(registered.state_path.read_text())["API"]["APIKey"] == key
