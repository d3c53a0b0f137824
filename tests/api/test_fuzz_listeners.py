"""Issue 15: random bytes and random field values at every RPC (Connect over HTTP/1.1, gRPC) and
random requests at every HTTP listener of a running ``monitor-api server``. Every answer is a
well-formed refusal (4xx, a gRPC status that is not UNKNOWN/INTERNAL/DATA_LOSS), the server
keeps serving and the database is unchanged."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta

import grpc
import httpx
import pytest
from api_testkit import MONITOR_IP, MONITOR_IP6, MONITOR_NAME, seed, snapshot
from hardening_kit import client_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_clients import Peer, RpcCallError, rpc_client
from sqlalchemy import Engine

from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.clock import FixedClock
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ("GetConfig", "GetServers", "SubmitResults")
SERVER_FAULTS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
# an id the seeded monitor really has (or "", any of its rows) would be served and recorded
mon_ids = st.text(min_size=1, max_size=40).filter(lambda t: t not in (MONITOR_IP, MONITOR_IP6))
STRANGER = "nobody-000000.devel.mon.ntppool.dev"  # a certificate of a monitor that has no rows
small_bytes = st.binary(max_size=64)


@st.composite
def server_status(draw: st.DrawFn) -> pb.ServerStatus:
    status = pb.ServerStatus(
        ticket=draw(small_bytes),
        ip_bytes=draw(st.one_of(small_bytes, st.binary(min_size=4, max_size=4))),
        stratum=draw(st.integers(-(2**31), 2**31 - 1)),
        leap=draw(st.integers(-(2**31), 2**31 - 1)),
        error=draw(st.text(max_size=40)),
        no_response=draw(st.booleans()),
    )
    status.offset.seconds = draw(st.integers(-(2**40), 2**40))
    status.offset.nanos = draw(st.integers(-999_999_999, 999_999_999))
    status.rtt.seconds = draw(st.integers(-(2**40), 2**40))
    status.ts.seconds = draw(st.integers(-62135596800, 253402300799))
    return status


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """(method, serialised request): valid-shaped messages with random field values."""
    method = draw(st.sampled_from(METHODS))
    if method == "GetConfig":
        message = pb.GetConfigRequest(mon_id=draw(mon_ids))
    elif method == "GetServers":
        message = pb.GetServersRequest(mon_id=draw(mon_ids))
    else:
        message = pb.SubmitResultsRequest(
            version=draw(st.integers(-(2**31), 2**31 - 1)),
            mon_id=draw(mon_ids),
            batch_id=draw(st.one_of(small_bytes, st.text(max_size=30).map(str.encode))),
            list=draw(st.lists(server_status(), max_size=4)),
        )
    return method, message.SerializeToString(), MONITOR_NAME


# random bytes may decode as a valid request (b"" is GetServers for any row): the stranger's
raw_requests = st.tuples(
    st.sampled_from((*METHODS, "Nope", "")), st.binary(max_size=512), st.just(STRANGER)
)
bodies = st.one_of(requests(), raw_requests)


def test_random_rpcs_are_refused_cleanly(
    monitor_api: MonitorApiServer, db: Engine, clock: FixedClock, stack: ExitStack
):
    seed(db, clock)
    before = snapshot(db)
    clients = {}
    for name in (MONITOR_NAME, STRANGER):
        cert = monitor_api.ca.issue_client(name, timedelta(hours=1))
        peer = Peer(monitor_api.ports["rpc"], monitor_api.ca.root_pem(), cert)
        clients[name] = (
            stack.enter_context(rpc_client("connect-h1", peer)),
            stack.enter_context(rpc_client("grpc", peer)),
        )

    @FUZZ
    @given(body=bodies, framed=st.booleans())
    def check(body: tuple[str, bytes, str], framed: bool) -> None:
        method, payload, caller = body
        connect, grpc_client = clients[caller]
        if framed:  # gRPC over HTTP/2
            try:
                grpc_client.call_raw(method if method in METHODS else "GetConfig", payload)
            except RpcCallError as exc:
                assert exc.code not in SERVER_FAULTS, exc
            return
        reply = connect.post(method, payload)
        assert 200 <= reply.status < 500, (reply.status, reply.body)
        if reply.status >= 400:
            assert reply.body  # a reason: Connect's JSON error or the plain answer

    check()
    assert snapshot(db) == before
    assert httpx.get(f"http://127.0.0.1:{monitor_api.ports['health']}/__health").text == "ok"


header_names = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z").filter(
    lambda h: h not in ("content-length", "transfer-encoding", "host", "connection")
)
header_values = st.from_regex(r"\A[ -~]{0,40}\Z").map(str.strip)
paths = st.one_of(
    st.sampled_from(
        (
            "/monitor/api/registration",
            "/monitor/api/config",
            "/api/oidc/token",
            "/api/oidc/jwks.json",
            "/.well-known/jwks.json",
            "/monitor/registration/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "/__health",
            "/",
            "/servers/1",
            "/servers/99999999999999999999",
            "/monitors",
            "/metrics",
        )
    ),
    st.from_regex(r"\A/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]{0,60}\Z"),
)


def test_random_http_requests_are_answered_cleanly(
    monitor_api: MonitorApiServer, db: Engine, clock: FixedClock
):
    seed(db, clock)
    before = snapshot(db)
    tls = client_context(monitor_api.ca.root_pem())
    clients = {
        "management": httpx.Client(
            base_url=f"https://127.0.0.1:{monitor_api.ports['management']}", verify=tls, timeout=10
        ),
        "health": httpx.Client(base_url=f"http://127.0.0.1:{monitor_api.ports['health']}"),
        "metrics": httpx.Client(base_url=f"http://127.0.0.1:{monitor_api.ports['metrics']}"),
    }
    try:

        @FUZZ
        @given(
            listener=st.sampled_from(sorted(clients)),
            method=st.sampled_from(("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")),
            path=paths,
            headers=st.dictionaries(header_names, header_values, max_size=5),
            body=st.binary(max_size=2048),
        )
        def check(
            listener: str, method: str, path: str, headers: dict[str, str], body: bytes
        ) -> None:
            if path == "/monitor/api/registration" and method == "POST":
                headers.pop("registration-id", None)  # a valid one would record a request
            response = clients[listener].request(method, path, headers=headers, content=body)
            assert 100 <= response.status_code < 500, (listener, method, path, response.text)

        check()
    finally:
        for client in clients.values():
            client.close()
    assert snapshot(db) == before
    assert httpx.get(f"http://127.0.0.1:{monitor_api.ports['health']}/__health").text == "ok"
