"""The management client against the real monitor-api (HTTPS, embedded CA, database on both
dialects): registration approved by the admin CLI, config with a certificate, the JWT, and a
revoked key. Fault injection (5xx, odd content types, request shapes) stays on the stand-in.
"""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from sqlalchemy import Engine

from agent.real_api import admin, register_agent
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import AuthorizationError
from ntpmon.api.runner import MonitorApiServer

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.fixture
def registered(db: Engine, api_server: MonitorApiServer, tmp_path: Path) -> AppConfig:
    """``setup`` run to completion; the operator approves while it polls."""
    return register_agent(db, api_server, tmp_path)


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
