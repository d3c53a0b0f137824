"""Issue 15 item 2: half-open TLS connections are capped per listener and closed after the
handshake timeout, and a legitimate client beside them is still served (a real
``monitor-api server`` process, its RPC and management ports)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_testkit import MONITOR_NAME, seed
from hardening_kit import client_context, half_open, rss_kib, wait_closed
from rpc_clients import Peer, rpc_client
from sqlalchemy import Engine

from ntpmon.api.ca import EmbeddedCA
from ntpmon.common.clock import FixedClock
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.apiprocess import ApiProcess, monitor_api_process

pytestmark = pytest.mark.db

FLOOD = 200
CAP = 64
HANDSHAKE_TIMEOUT = 2.0
LIMIT_FLAGS = (
    "--max-connections",
    str(CAP),
    "--management-max-connections",
    str(CAP),
    "--tls-handshake-timeout",
    str(HANDSHAKE_TIMEOUT),
)


def _management_call(api: ApiProcess, ca_pem: str) -> Callable[[], None]:
    def call() -> None:
        url = f"https://127.0.0.1:{api.ports['management']}/api/oidc/jwks.json"
        response = httpx.get(url, verify=client_context(ca_pem), timeout=10)
        assert response.status_code == 200
        assert response.json()["keys"]

    return call


def _rpc_call(api: ApiProcess, ca: EmbeddedCA) -> Callable[[], None]:
    from datetime import timedelta

    peer = Peer(api.ports["rpc"], ca.root_pem(), ca.issue_client(MONITOR_NAME, timedelta(hours=1)))

    def call() -> None:
        with rpc_client("connect-h1", peer) as client:
            config = client.call("GetConfig", pb.GetConfigRequest(mon_id="192.0.2.10"))
        assert isinstance(config, pb.GetConfigResponse)

    return call


@pytest.mark.parametrize("port_name", ["rpc", "management"])
def test_half_open_flood_is_capped_and_timed_out_while_a_client_is_served(
    db: Engine, clock: FixedClock, tmp_path: Path, port_name: str
):
    seed(db, clock)
    dsn = db.url.render_as_string(hide_password=False)
    data = tmp_path / "data"
    with monitor_api_process(dsn, data, *LIMIT_FLAGS) as api:
        ca = EmbeddedCA.load_or_create(data / "ca")
        call = _rpc_call(api, ca) if port_name == "rpc" else _management_call(api, ca.root_pem())
        call()  # warm: code paths loaded before the baseline
        before = rss_kib(api.proc.pid)
        flood = half_open(api.ports[port_name], FLOOD)
        try:
            latencies = []
            for _ in range(5):
                started = time.monotonic()
                call()
                latencies.append(time.monotonic() - started)
            during = rss_kib(api.proc.pid)
            closed = wait_closed(flood, within=HANDSHAKE_TIMEOUT * 3 + 5)
        finally:
            for sock in flood:
                sock.close()
        grown = (during - before) / 1024
        print(
            f"\n{port_name}: legitimate calls beside {FLOOD} half-open connections took "
            + ", ".join(f"{t * 1000:.0f}" for t in latencies)
            + f" ms; RSS +{grown:.1f} MiB with them open"
        )
        assert closed == FLOOD
        assert grown < 64, f"RSS grew by {grown:.1f} MiB"
        call()  # and served afterwards
        assert api.proc.poll() is None


def test_established_connections_past_the_cap_are_refused(db: Engine, tmp_path: Path):
    """When every slot holds a finished handshake, the newest connection is the one closed."""
    dsn = db.url.render_as_string(hide_password=False)
    data = tmp_path / "data"
    flags = ("--management-max-connections", "4", "--tls-handshake-timeout", "5")
    with monitor_api_process(dsn, data, *flags) as api:
        tls = client_context((data / "ca" / "ca.pem").read_text())
        clients = [
            httpx.Client(
                verify=tls, timeout=10, base_url=f"https://127.0.0.1:{api.ports['management']}"
            )
            for _ in range(5)
        ]
        try:
            served = [c.get("/api/oidc/jwks.json").status_code for c in clients[:4]]
            assert served == [200] * 4  # four kept-alive connections hold every slot
            with pytest.raises(httpx.TransportError):
                clients[4].get("/api/oidc/jwks.json")
            clients[0].close()  # a slot frees up
            deadline = time.monotonic() + 10
            status = None
            while status is None and time.monotonic() < deadline:
                try:
                    status = clients[4].get("/api/oidc/jwks.json").status_code
                except httpx.TransportError:
                    time.sleep(0.1)
            assert status == 200
        finally:
            for client in clients:
                client.close()
