"""The whole joining path over real sockets: register over HTTPS, approve with the admin CLI,
fetch config and a certificate, then GetConfig/GetServers/SubmitResults with that certificate."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import jwt
import pytest
from api_testkit import loopback_options, snapshot
from sqlalchemy import Engine, select

from ntpmon.api.cli import app as cli_app
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.cli import run_app
from ntpmon.common.clock import SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.ulid import new_ulid
from ntpmon.db.tables import api_keys, log_scores, monitors, server_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.fixture
def server(db: Engine, tmp_path) -> Iterator[MonitorApiServer]:
    running = MonitorApiServer(loopback_options(db, tmp_path / "data"))
    running.wait_ready()
    try:
        yield running
    finally:
        running.stop()


def _dsn(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


def _cli(db: Engine, *args: str, capsys) -> str:
    assert run_app(cli_app, "monitor-api", [*args, "--database-dsn", _dsn(db)]) == 0
    return capsys.readouterr().out


@pytest.fixture
def http(server: MonitorApiServer, tmp_path) -> Iterator[httpx.Client]:
    with _client(server, tmp_path) as client:
        yield client


def _client(server: MonitorApiServer, tmp_path) -> httpx.Client:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(server.ca.root_pem())
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    return httpx.Client(base_url=f"https://127.0.0.1:{server.ports['management']}", verify=context)


def _register(client: httpx.Client, reg_id: str) -> dict:
    reply = client.post(
        "/monitor/api/registration",
        headers={"Registration-ID": reg_id},
        data={"hostname": "Test Host.example.org"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_register_approve_certificate_and_submit(db, server, http, capsys):
    reg_id = new_ulid(SystemClock().now()).text
    first = _register(http, reg_id)
    assert first["Status"] == "pending"
    assert first["APIToken"] == ""
    assert first["URL"].endswith(f"/monitor/registration/{reg_id}")
    assert reg_id in _cli(db, "admin", "registrations", "list", capsys=capsys)

    _cli(db, "admin", "servers", "add", "127.0.0.2", capsys=capsys)
    _cli(db, "admin", "servers", "add", "127.0.0.3", capsys=capsys)
    out = _cli(db, "admin", "registrations", "approve", reg_id, capsys=capsys)
    assert "testing" in out
    accepted = _register(http, reg_id)
    assert accepted["Status"] == "accepted"
    api_key = accepted["APIToken"]
    assert api_key
    assert _register(http, reg_id) == {**accepted, "Status": "completed", "APIToken": ""}
    with db.connect() as conn:
        stored = conn.execute(select(api_keys.c.key_hash)).scalars().all()
    assert len(stored) == 1
    assert api_key not in stored[0]

    auth = {"Authorization": f"Bearer {api_key}"}
    plain = http.get("/monitor/api/config", headers=auth).json()
    assert plain["tls"]["cert"] == ""
    assert plain["tls"]["ca"] == server.ca.root_pem()
    assert plain["ipv4"] == {"status": "testing", "ip": "127.0.0.1"}
    assert plain["ipv6"] == {"status": "", "ip": ""}
    tls_name = plain["tls_name"]
    assert tls_name.startswith("test-host-")
    assert tls_name.endswith(".devel.mon.ntppool.dev")
    issued = http.get(
        "/monitor/api/config", params={"request_certificate": "true"}, headers=auth
    ).json()
    assert "BEGIN CERTIFICATE" in issued["tls"]["cert"]
    assert "PRIVATE KEY" in issued["tls"]["key"]

    token = http.post("/api/oidc/token", headers=auth, json={"expires_in": 7200}).json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    jwks = http.get("/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(token["access_token"], key, algorithms=["ES256"], audience="monitor-api")
    assert claims["sub"] == tls_name
    assert claims["scope"] == "monitor:rpc"
    assert http.get("/api/oidc/jwks.json").json() == jwks

    import grpc

    from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

    creds = grpc.ssl_channel_credentials(
        root_certificates=issued["tls"]["ca"].encode(),
        private_key=issued["tls"]["key"].encode(),
        certificate_chain=issued["tls"]["cert"].encode(),
    )
    with grpc.secure_channel(
        f"127.0.0.1:{server.ports['rpc']}",
        creds,
        options=[("grpc.primary_user_agent", "ntppool-agent/v4.1.5")],
    ) as channel:
        stub = pb_grpc.MonitorServiceStub(channel)
        config = stub.GetConfig(pb.GetConfigRequest(mon_id="127.0.0.1"))
        assert config.ip_bytes == bytes([127, 0, 0, 1])
        batch = stub.GetServers(pb.GetServersRequest(mon_id="127.0.0.1"))
        assert len(batch.servers) == 2
        statuses = []
        for s in batch.servers:
            st = pb.ServerStatus(ticket=s.ticket, ip_bytes=s.ip_bytes, stratum=3)
            st.offset.FromNanoseconds(-30_000_000)
            st.ts.GetCurrentTime()
            statuses.append(st)
        reply = stub.SubmitResults(
            pb.SubmitResultsRequest(
                version=4, mon_id="127.0.0.1", batch_id=batch.batch_id, list=statuses
            )
        )
        assert reply.ok
    with db.connect() as conn:
        rows = conn.execute(select(log_scores)).all()
        monitor = conn.execute(select(monitors).where(monitors.c.tls_name == tls_name)).one()
        raws = conn.execute(select(server_scores.c.score_raw)).scalars().all()
    assert len(rows) == 2
    assert {r.monitor_id for r in rows} == {monitor.id}
    assert all(r.offset == pytest.approx(-0.03) for r in rows)
    assert all(r.step == pytest.approx(-6.667 * 0.03 + 1.167) for r in rows)
    assert raws == pytest.approx([rows[0].step, rows[1].step])
    assert monitor.client_version == "v4.1.5"

    health = httpx.get(f"http://127.0.0.1:{server.ports['health']}/__health")
    assert (health.status_code, health.text) == (200, "ok")
    exposition = httpx.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics").text
    series = f'account="",account_id="0",ip_version="v4",monitor="{tls_name}"'
    assert f"tests_requested_total{{{series}}} 2.0" in exposition
    assert "monitorapi_build_info" in exposition


BAD_REGISTRATION_IDS = ["", "short", "0" * 25 + "U", "8" + "0" * 25]


@pytest.mark.parametrize("reg_id", BAD_REGISTRATION_IDS)
def test_bad_registration_id_is_400_and_changes_nothing(reg_id, db, http):
    before = snapshot(db)
    headers = {"Registration-ID": reg_id} if reg_id else {}
    reply = http.post("/monitor/api/registration", headers=headers)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert snapshot(db) == before


def test_oversized_registration_form_is_413_and_changes_nothing(db, http):
    before = snapshot(db)
    reply = http.post(
        "/monitor/api/registration",
        headers={"Registration-ID": new_ulid(SystemClock().now()).text},
        data={"hostname": "x" * 10_000},
    )
    assert reply.status_code == 413
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/monitor/api/config", {}),
        ("GET", "/monitor/api/config", {"Authorization": "Bearer ntpmon_not-a-key"}),
        ("GET", "/monitor/api/config?request_certificate=true", {"Authorization": "Bearer x"}),
        ("GET", "/monitor/api/config", {"Authorization": "Basic abc"}),
        ("POST", "/api/oidc/token", {}),
        ("POST", "/api/oidc/token", {"Authorization": "Bearer ntpmon_not-a-key"}),
    ],
)
def test_bad_api_key_is_401_and_changes_nothing(method, path, headers, db, http):
    before = snapshot(db)
    reply = http.request(method, path, headers=headers, json={"expires_in": 60})
    assert reply.status_code == 401
    assert reply.text.strip() == "api key unauthorized"
    assert snapshot(db) == before


def test_no_certificate_for_a_monitor_that_is_not_live(db, server, http, capsys):
    reg_id = new_ulid(SystemClock().now()).text
    _register(http, reg_id)
    _cli(db, "admin", "registrations", "approve", reg_id, capsys=capsys)
    api_key = _register(http, reg_id)["APIToken"]
    listing = json.loads(_cli(db, "admin", "monitors", "list", "--json", capsys=capsys))
    tls_name = listing[0]["tls_name"]
    _cli(db, "admin", "monitors", "pause", tls_name, capsys=capsys)
    reply = http.get(
        "/monitor/api/config",
        params={"request_certificate": "true"},
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    assert reply["ipv4"]["status"] == "paused"
    assert reply["tls"]["cert"] == reply["tls"]["key"] == ""
    _cli(db, "admin", "monitors", "delete", tls_name, capsys=capsys)
    gone = http.get("/monitor/api/config", headers={"Authorization": f"Bearer {api_key}"})
    assert gone.status_code == 401


def test_loopback_registration_is_refused_outside_devel(db, tmp_path):
    running = MonitorApiServer(loopback_options(db, tmp_path / "prod", DeployEnv.TEST))
    running.wait_ready()
    try:
        before = snapshot(db)
        with _client(running, tmp_path) as client:
            reply = client.post(
                "/monitor/api/registration",
                headers={"Registration-ID": new_ulid(SystemClock().now()).text},
            )
        assert reply.status_code == 400
        assert "cannot be used for a monitor" in reply.text
        assert snapshot(db) == before
    finally:
        running.stop()
