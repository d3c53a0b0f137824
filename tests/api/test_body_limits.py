"""Issue 15 item 1: every HTTP listener stops reading a body at its limit and answers 413 (the
RPC port RESOURCE_EXHAUSTED), chunked bodies without Content-Length included, memory bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_testkit import RunningApi
from hardening_kit import CHUNK, chunked_upload, client_context, connect, rss_kib
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ntpmon.api.bodylimit import (
    DRAIN_LIMIT,
    INTERNAL_BODY_LIMIT,
    MANAGEMENT_BODY_LIMIT,
    READ_ONLY_BODY_LIMIT,
)
from ntpmon.api.mqserver.broker import MqServerSettings
from ntpmon.api.mqserver.service import InternalApi, build_internal_api, serve_http
from ntpmon.api.rpc.app import MAX_MESSAGE_BYTES
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.clock import SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.ulid import new_ulid
from ntpmon.db import registrations as reg
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.testing.apiprocess import monitor_api_process

pytestmark = pytest.mark.db

MIB = 1 << 20
FLOOD = 256 * MIB


def _registration_headers() -> dict[str, str]:
    return {
        "Registration-ID": new_ulid(SystemClock().now()).text,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_chunked_256_mib_registration_is_413_with_memory_bounded(db: Engine, tmp_path: Path):
    """The upload of issue 15 against a real ``monitor-api server`` process: +235 MB of RSS
    before; now the server stops reading past 8 KiB (+1 MiB drained) and closes."""
    dsn = db.url.render_as_string(hide_password=False)
    with monitor_api_process(dsn, tmp_path / "data") as api:
        ca_pem = (tmp_path / "data" / "ca" / "ca.pem").read_text()
        tls = client_context(ca_pem)
        port = api.ports["management"]
        with connect(port, tls) as warm:  # the code paths loaded before the baseline
            warm_up = chunked_upload(warm, "/monitor/api/registration", _registration_headers(), 0)
        assert warm_up.status_line.startswith("HTTP/1.1 ")
        before = rss_kib(api.proc.pid, "VmHWM")
        with connect(port, tls) as sock:
            result = chunked_upload(
                sock, "/monitor/api/registration", _registration_headers(), FLOOD
            )
        after = rss_kib(api.proc.pid, "VmHWM")
        grown_mib = (after - before) / 1024
        taken = result.sent / MIB
        print(f"\npeak RSS grew by {grown_mib:.1f} MiB; the server took {taken:.1f} MiB")
        assert result.status_line == "HTTP/1.1 413 Request Entity Too Large", result.response
        # (its text may be lost: the client was still sending when the server closed, so the
        # kernel answered with a reset; the status line came first)
        assert result.sent < 64 * MIB  # it stopped reading long before the end
        assert grown_mib < 32, f"peak RSS grew by {grown_mib:.1f} MiB"
        assert api.proc.poll() is None


@pytest.fixture
def internal_api() -> Iterator[tuple[InternalApi, int]]:
    """The internal API's HTTP side (no broker needed to refuse a body)."""
    settings = MqServerSettings(
        env=DeployEnv.DEVEL,
        server_name="api.devel.mon.ntppool.dev",
        endpoint=BrokerEndpoint(host="127.0.0.1", port=1),
        jwt_key="t-key-for-tests-only-0123456789-0123456789-01234567",
    )
    api = build_internal_api(
        settings, load_monitors=lambda _name: [], registry=CollectorRegistry(), clock=SystemClock()
    )
    running = serve_http(api.app, "127.0.0.1", 0)
    try:
        yield api, running.port
    finally:
        running.stop()


ENDPOINTS = [
    ("management", "POST", "/monitor/api/registration", MANAGEMENT_BODY_LIMIT),
    ("management", "POST", "/api/oidc/token", MANAGEMENT_BODY_LIMIT),
    ("management", "GET", "/monitor/api/config", MANAGEMENT_BODY_LIMIT),
    ("health", "GET", "/__health", READ_ONLY_BODY_LIMIT),
    ("health", "GET", "/monitors", READ_ONLY_BODY_LIMIT),
    ("metrics", "GET", "/metrics", READ_ONLY_BODY_LIMIT),
]


@pytest.mark.parametrize(("listener", "method", "path", "limit"), ENDPOINTS)
def test_every_endpoint_refuses_a_chunked_body_past_its_limit(
    monitor_api: MonitorApiServer, listener: str, method: str, path: str, limit: int
):
    """Half a MiB, within what is drained: the client, done sending, reads the whole 413."""
    tls = client_context(monitor_api.ca.root_pem()) if listener == "management" else None
    with connect(monitor_api.ports[listener], tls) as sock:
        result = chunked_upload(sock, path, _registration_headers(), DRAIN_LIMIT // 2, method)
    assert result.status_line == "HTTP/1.1 413 Request Entity Too Large", result.response
    assert f"body larger than {limit} bytes".encode() in result.response
    assert b"connection: close" in result.response.lower()


def test_internal_api_refuses_a_chunked_body_past_its_limit(
    internal_api: tuple[InternalApi, int],
):
    _, port = internal_api
    with connect(port, None) as sock:
        result = chunked_upload(sock, "/check/ntp/192.0.2.1", {}, DRAIN_LIMIT // 2)
    assert result.status_line == "HTTP/1.1 413 Request Entity Too Large", result.response
    assert f"body larger than {INTERNAL_BODY_LIMIT} bytes".encode() in result.response


def test_declared_length_past_the_limit_is_413_without_reading(monitor_api: MonitorApiServer):
    """A Content-Length past the drain limit is refused on the headers alone."""
    with connect(monitor_api.ports["health"], None) as sock:
        sock.sendall(b"POST /__health HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        response = sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 413 "), response


def test_a_body_within_the_limit_still_reaches_the_handler(
    monitor_api: MonitorApiServer, db: Engine
):
    """The body is read ahead and replayed: the registration handler sees the form."""
    headers = _registration_headers()
    response = httpx.post(
        f"https://127.0.0.1:{monitor_api.ports['management']}/monitor/api/registration",
        content=b"hostname=agent.example&a=",
        headers=headers,
        verify=client_context(monitor_api.ca.root_pem()),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["Status"] == "pending"
    with db.connect() as conn:
        found = reg.get_registration(conn, registration_id=headers["Registration-ID"])
    assert found is not None and found.hostname == "agent.example"


def test_rpc_port_refuses_a_chunked_message_past_its_limit(api: RunningApi):
    """Connect over HTTP/1.1, chunked, no Content-Length: RESOURCE_EXHAUSTED (HTTP 429)."""
    with connect(api.port, client_context(api.ca.root_pem())) as sock:
        result = chunked_upload(
            sock,
            "/monitor.v2.MonitorService/SubmitResults",
            {"Content-Type": "application/proto"},
            MAX_MESSAGE_BYTES + 4 * CHUNK,
        )
    assert result.status_line.startswith("HTTP/1.1 429 "), result.response
    assert b'"code":"resource_exhausted"' in result.response
