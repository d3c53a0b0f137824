"""Every file holding a secret is 0600 (issue 15, item 6), after the real flows under a umask
of 022: monitor-api started on an empty data directory (CA key, JWT signing key, ticket keys,
server key), an agent registered with it through ``setup`` and its config loaded (API key in
state.json, client key and certificate), and monitor-api restarted over a server key that
someone had opened up to 0644."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.real_api import register_agent
from ntpmon.api.runner import MonitorApiServer, ServerOptions
from ntpmon.api.ticketkeys import ENV_KEYS

pytestmark = [pytest.mark.db, pytest.mark.e2e]

API_SECRETS = {"ca/ca.key", "jwt/signing.key", "ticket-keys.json", "server/tls.key"}
API_PUBLIC = {"ca/ca.pem", "server/tls.crt"}  # may be 0600 too, but need not


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_of(directory: Path) -> dict[str, int]:
    """``{relative path: mode}`` of every regular file under ``directory``."""
    return {str(p.relative_to(directory)): mode(p) for p in directory.rglob("*") if p.is_file()}


@pytest.fixture
def umask_022(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The usual umask, under which a plain write makes a file 0644; the data-dir key file is
    used for tickets (not ``MONITOR_TICKET_KEYS``)."""
    monkeypatch.delenv(ENV_KEYS, raising=False)
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def api_server(umask_022: None, db: Engine, tmp_path: Path) -> Iterator[MonitorApiServer]:
    """monitor-api started under the umask (the agent conftest's server starts before it)."""
    server = start_api(db, tmp_path / "api-data")
    try:
        yield server
    finally:
        server.stop()


def start_api(db: Engine, data_dir: Path) -> MonitorApiServer:
    loopback = "127.0.0.1:0"
    options = ServerOptions(
        engine=db,
        data_dir=data_dir,
        listen=loopback,
        management_listen=loopback,
        health_listen=loopback,
        metrics_listen=loopback,
        grace=2,
    )
    server = MonitorApiServer(options)
    server.wait_ready()
    return server


def test_every_secret_of_agent_and_api_is_0600(
    db: Engine, api_server: MonitorApiServer, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.write_text("a plain write")
    assert mode(control) == 0o644  # the umask would have exposed a file written carelessly

    agent = register_agent(db, api_server, tmp_path)
    agent.load()  # the config, with the client certificate and its key
    assert agent.have_certificate()
    state_dir = agent.state_path.parent
    assert json.loads(agent.state_path.read_text())["API"]["APIKey"] == agent.api_key()
    agent_files = files_of(state_dir)
    assert {"state.json", "key.pem", "cert.pem", "ca.pem"} <= set(agent_files)
    assert agent_files == dict.fromkeys(agent_files, 0o600)
    assert mode(state_dir) == 0o700

    api_files = files_of(tmp_path / "api-data")
    assert set(api_files) >= API_SECRETS
    assert {name: api_files[name] for name in API_SECRETS} == dict.fromkeys(API_SECRETS, 0o600)
    exposed = {name for name, m in api_files.items() if m & 0o077}
    assert exposed <= API_PUBLIC, f"a new file readable by others: {exposed - API_PUBLIC}"


def test_restart_over_an_opened_up_server_key_makes_it_0600_again(
    db: Engine, api_server: MonitorApiServer, tmp_path: Path
) -> None:
    """The server key is rewritten at every start; O_TRUNC would keep a 0644 it found."""
    data_dir = tmp_path / "api-data"
    key = data_dir / "server" / "tls.key"
    api_server.stop()
    before = key.read_text()
    key.chmod(0o644)
    restarted = start_api(db, data_dir)
    try:
        assert key.read_text() != before  # a new key was written
        assert mode(key) == 0o600
    finally:
        restarted.stop()
