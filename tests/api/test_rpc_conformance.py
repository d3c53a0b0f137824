"""The RPC port as its clients see it on every protocol (issue 14): round trips with the ALPN
each client negotiates, the agent version stored from ``User-Agent``, and HTTP-level bad
input (content types, methods, paths, bodies, compression, timeouts) answered with connect-go's
codes and HTTP statuses, nothing written and the server still serving afterwards."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
from api_testkit import MONITOR_IP, seed, snapshot
from rpc_clients import (
    EXPECTED_ALPN,
    PROTOCOLS,
    GrpcioClient,
    HttpRpcClient,
    Peer,
    RpcCallError,
    check_failure,
    frame,
    rpc_client,
)
from sqlalchemy import select

from ntpmon.db.tables import monitors
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db
Code = grpc.StatusCode
EVERY = (*PROTOCOLS, "grpc-raw")
GOOD = pb.GetConfigRequest(mon_id=MONITOR_IP).SerializeToString()
BOMB = gzip.compress(b"\0" * (16 << 20))  # 16 KiB on the wire, 16 MiB inflated
OVERSIZED = b"\x0a" + b"\x80\x80\x80\x01" + b"x" * (2 << 20)  # a 2 MiB mon_id


def _peer(api, **kw) -> Peer:
    return Peer(api.port, api.ca.root_pem(), api.client_cert(), **kw)


@pytest.mark.parametrize("protocol", EVERY)
def test_round_trip(protocol, db, clock, api):
    seed(db, clock)
    with rpc_client(protocol, _peer(api)) as client:
        config = client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP))
        batch = client.call("GetServers", pb.GetServersRequest(mon_id=MONITOR_IP))
        reply = client.call(
            "SubmitResults",
            pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id),
        )
        if isinstance(client, HttpRpcClient):
            assert client.last_alpn == EXPECTED_ALPN[protocol]
    assert config.ip_bytes == bytes([192, 0, 2, 10])
    assert len(batch.servers) == 3
    assert reply.ok


USER_AGENTS = {
    "Go agent with commit and build": (
        "ntppool-agent/v4.1.5/abc1234 (2026-04-28T10:00:00Z, go1.26)",
        "v4.1.5/abc1234",
    ),
    "Go agent, connect-go suffix": ("ntppool-agent/v4.2.0 connect-go/1.19.1 (go1.26)", "v4.2.0"),
    "bare version": ("ntppool-agent/v4.0.3", "v4.0.3"),
}


@pytest.mark.parametrize("protocol", EVERY)
@pytest.mark.parametrize("agent", list(USER_AGENTS))
def test_agent_version_is_stored_from_the_user_agent(agent, protocol, db, clock, api):
    """grpcio appends `` grpc-python/...`` to every user agent; the cut drops it too."""
    user_agent, version = USER_AGENTS[agent]
    ids = seed(db, clock)
    with rpc_client(protocol, _peer(api, user_agent=user_agent)) as client:
        client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP))
    with db.connect() as conn:
        stored = conn.execute(
            select(monitors.c.client_version).where(monitors.c.id == ids.monitor_id)
        ).scalar()
    assert stored == version


CONNECT = ("connect-h1", "connect-h2")
FRAMED = ("grpcweb", "grpc-raw")


def _body(payload: bytes, flags: int = 0) -> Callable[[bool], bytes]:
    """The request body: bare for Connect, one frame for gRPC and gRPC-Web."""
    return lambda framed: frame(payload, flags) if framed else payload


@dataclass(frozen=True)
class HttpCase:
    """One malformed or unusual request and what every client must see for it."""

    protocols: tuple[str, ...]
    code: Code | None  # None: the call succeeds
    message: str = ""
    http_status: int | None = None  # when the answer is plain HTTP, not an RPC error
    path: str = "GetConfig"
    http_method: str = "POST"
    headers: dict[str, str | bytes | None] = field(default_factory=dict)  # None: removed
    body: Callable[[bool], bytes] = field(default=_body(GOOD))


HTTP_CASES = {
    "wrong content type": HttpCase(
        (*CONNECT, *FRAMED), Code.UNKNOWN, http_status=415, headers={"content-type": "text/xml"}
    ),
    "GET": HttpCase((*CONNECT, *FRAMED), Code.UNKNOWN, http_status=405, http_method="GET"),
    "GET without content type": HttpCase(
        CONNECT, Code.UNKNOWN, http_status=405, http_method="GET", headers={"content-type": None}
    ),
    "unknown method": HttpCase(CONNECT, Code.UNIMPLEMENTED, http_status=404, path="Nope"),
    "unknown method (gRPC)": HttpCase(FRAMED, Code.UNIMPLEMENTED, path="Nope"),
    "unknown service": HttpCase(
        CONNECT, Code.UNIMPLEMENTED, http_status=404, path="/other.v1.S/GetConfig"
    ),
    "unknown service (gRPC)": HttpCase(FRAMED, Code.UNIMPLEMENTED, path="/other.v1.S/GetConfig"),
    "malformed protobuf": HttpCase(
        (*CONNECT, *FRAMED), Code.INVALID_ARGUMENT, "unmarshal", body=_body(b"\x0a\xff\x01")
    ),
    "malformed JSON": HttpCase(
        ("connect-json",), Code.INVALID_ARGUMENT, "unmarshal", body=_body(b'{"monId":')
    ),
    "JSON of the wrong type": HttpCase(
        ("connect-json",), Code.INVALID_ARGUMENT, "unmarshal", body=_body(b'{"monId":[1]}')
    ),
    "gzip body": HttpCase(
        CONNECT, None, headers={"content-encoding": "gzip"}, body=_body(gzip.compress(GOOD))
    ),
    "gzip message": HttpCase(
        FRAMED, None, headers={"grpc-encoding": "gzip"}, body=_body(gzip.compress(GOOD), 1)
    ),
    "gzip bomb": HttpCase(
        CONNECT,
        Code.RESOURCE_EXHAUSTED,
        "larger than",
        headers={"content-encoding": "gzip"},
        body=_body(BOMB),
    ),
    "gzip bomb (gRPC)": HttpCase(
        FRAMED,
        Code.RESOURCE_EXHAUSTED,
        "larger than",
        headers={"grpc-encoding": "gzip"},
        body=_body(BOMB, 1),
    ),
    "truncated gzip": HttpCase(
        CONNECT,
        Code.INVALID_ARGUMENT,
        "gzip",
        headers={"content-encoding": "gzip"},
        body=_body(gzip.compress(GOOD)[:-9]),
    ),
    "not gzip at all": HttpCase(
        CONNECT, Code.INVALID_ARGUMENT, "gzip", headers={"content-encoding": "gzip"}
    ),
    "truncated gzip (gRPC)": HttpCase(
        FRAMED,
        Code.INVALID_ARGUMENT,
        "gzip",
        headers={"grpc-encoding": "gzip"},
        body=_body(gzip.compress(GOOD)[:-9], 1),
    ),
    "oversized body": HttpCase(
        (*CONNECT, *FRAMED), Code.RESOURCE_EXHAUSTED, "larger than", body=_body(OVERSIZED)
    ),
    "unknown compression": HttpCase(
        CONNECT, Code.UNIMPLEMENTED, "compression", headers={"content-encoding": "br"}
    ),
    "unknown compression (gRPC)": HttpCase(
        FRAMED,
        Code.UNIMPLEMENTED,
        "compression",
        headers={"grpc-encoding": "snappy"},
        body=_body(GOOD, 1),
    ),
    "compressed flag without grpc-encoding": HttpCase(
        FRAMED, Code.INTERNAL, "grpc-encoding", body=_body(gzip.compress(GOOD), 1)
    ),
    "Connect-Timeout-Ms garbage": HttpCase(
        CONNECT, Code.INVALID_ARGUMENT, "Connect-Timeout-Ms", headers={"connect-timeout-ms": "soon"}
    ),
    "Connect-Timeout-Ms negative": HttpCase(
        CONNECT, Code.INVALID_ARGUMENT, "Connect-Timeout-Ms", headers={"connect-timeout-ms": "-5"}
    ),
    "Connect-Timeout-Ms of a latin-1 digit": HttpCase(
        CONNECT,
        Code.INVALID_ARGUMENT,
        "Connect-Timeout-Ms",
        headers={"connect-timeout-ms": b"\xb2"},
    ),
    "grpc-timeout of a latin-1 digit": HttpCase(
        FRAMED, Code.INVALID_ARGUMENT, "grpc-timeout", headers={"grpc-timeout": b"\xb9S"}
    ),
    "grpc-timeout garbage": HttpCase(
        FRAMED, Code.INVALID_ARGUMENT, "grpc-timeout", headers={"grpc-timeout": "10x"}
    ),
    "grpc-timeout without unit": HttpCase(
        FRAMED, Code.INVALID_ARGUMENT, "grpc-timeout", headers={"grpc-timeout": "10"}
    ),
    "two messages in a unary request": HttpCase(
        FRAMED, Code.INVALID_ARGUMENT, "one whole message", body=lambda _: frame(GOOD) * 2
    ),
    "empty framed body": HttpCase(FRAMED, Code.INVALID_ARGUMENT, "no message", body=lambda _: b""),
}


def _http_params() -> list[object]:
    return [
        pytest.param(p, name, id=f"{p}-{name}")
        for name, case in HTTP_CASES.items()
        for p in case.protocols
    ]


def _send(client: HttpRpcClient, case: HttpCase) -> pb.GetConfigResponse:
    headers: dict[str, str | bytes] = {k.lower(): v for k, v in client.headers().items()}
    for name, value in case.headers.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    reply = client.post(case.path, case.body(client.framed), headers, http_method=case.http_method)
    if case.http_status is not None:
        assert reply.status == case.http_status, reply
    return client.result(reply, "GetConfig")


@pytest.mark.parametrize(("protocol", "case"), _http_params())
def test_http_level_bad_input(protocol, case, db, clock, api):
    case = HTTP_CASES[case]
    seed(db, clock)
    before = snapshot(db)
    with rpc_client(protocol, _peer(api)) as client:
        assert isinstance(client, HttpRpcClient)
        if case.code is None:
            assert _send(client, case).ip_bytes == bytes([192, 0, 2, 10])
        else:
            with pytest.raises(RpcCallError) as err:
                _send(client, case)
            if case.http_status is None:
                check_failure(protocol, err.value, case.code)
            assert err.value.code == case.code
            assert case.message in err.value.message
            assert snapshot(db) == before
        # still serving, on the same connection (HTTP/2: a late DATA frame must not kill it)
        assert client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP)).ip_bytes


def test_grpcio_gzip_request_is_accepted(db, clock, api):
    seed(db, clock)
    with GrpcioClient(_peer(api), compression=grpc.Compression.Gzip) as client:
        batch = client.call("GetServers", pb.GetServersRequest(mon_id=MONITOR_IP))
    assert len(batch.servers) == 3


def test_grpcio_malformed_protobuf_is_invalid_argument(db, clock, api):
    seed(db, clock)
    before = snapshot(db)
    with GrpcioClient(_peer(api)) as client:
        with pytest.raises(RpcCallError) as err:
            client.call_raw("SubmitResults", b"\x22\xff\xff")
        assert snapshot(db) == before
        assert client.call("GetConfig", pb.GetConfigRequest(mon_id=MONITOR_IP)).ip_bytes
    assert err.value.code == Code.INVALID_ARGUMENT
    assert "unmarshal into SubmitResultsRequest" in err.value.message
