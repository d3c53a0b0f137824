"""The ``connectrpc`` Python client (pyqwest: reqwest with rustls) and grpcio against the
real RPC listener: the three calls succeed and refusals carry their codes.

connectrpc gzips every request by default, so the gzip rows prove the listener inflates
Connect, gRPC and gRPC-Web bodies as those clients send them; the identity row proves the
uncompressed path. Connect runs over HTTP/1.1 (what the Go agent speaks) and HTTP/2, chosen
through pyqwest's ALPN (``http_version``).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from api_testkit import seed
from connectrpc.compression.gzip import GzipCompression
from connectrpc.protocol import ProtocolType
from outside_clients import (
    AUTHS,
    REFUSALS,
    ClientOf,
    ConnectRpc,
    Credentials,
    RpcClient,
    credentials_for,
    full_round,
    grpcio_client,
    refuse,
    rpc_url,
)
from pyqwest import HTTPVersion, SyncClient, SyncHTTPTransport

from ntpmon.api.runner import MonitorApiServer

pytestmark = [pytest.mark.db, pytest.mark.e2e]


def _connectrpc(protocol: ProtocolType, http: HTTPVersion, gzip: bool) -> ClientOf:
    def make(stack: ExitStack, server: MonitorApiServer, creds: Credentials) -> RpcClient:
        transport = SyncHTTPTransport(
            tls_ca_cert=creds.ca_file.read_bytes(),
            tls_cert=creds.cert_file.read_bytes() if creds.cert_file else None,
            tls_key=creds.key_file.read_bytes() if creds.key_file else None,
            http_version=http,
        )
        stack.callback(transport.close)
        return ConnectRpc(
            SyncClient(transport),
            rpc_url(server),
            protocol,
            creds,
            GzipCompression() if gzip else None,
        )

    return make


CLIENTS: dict[str, ClientOf] = {
    "connectrpc Connect HTTP/1.1 gzip": _connectrpc(ProtocolType.CONNECT, HTTPVersion.HTTP1, True),
    "connectrpc Connect HTTP/2 gzip": _connectrpc(ProtocolType.CONNECT, HTTPVersion.HTTP2, True),
    "connectrpc Connect HTTP/2 identity": _connectrpc(
        ProtocolType.CONNECT, HTTPVersion.HTTP2, False
    ),
    "connectrpc gRPC gzip": _connectrpc(ProtocolType.GRPC, HTTPVersion.HTTP2, True),
    "connectrpc gRPC-Web gzip": _connectrpc(ProtocolType.GRPC_WEB, HTTPVersion.HTTP2, True),
    "grpcio": grpcio_client,
}


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("kind", list(CLIENTS))
def test_get_config_servers_and_a_whole_batch(
    kind, auth, db, clock, monitor_api, tmp_path: Path, stack
):
    ids = seed(db, clock)
    creds = credentials_for(monitor_api, tmp_path, auth)
    full_round(CLIENTS[kind](stack, monitor_api, creds), db, ids)


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("kind", list(CLIENTS))
def test_refusals_carry_the_code_and_change_nothing(
    kind, case, db, clock, monitor_api, tmp_path: Path, stack
):
    ids = seed(db, clock)
    client = CLIENTS[kind](
        stack, monitor_api, credentials_for(monitor_api, tmp_path / "c", AUTHS[1])
    )
    anonymous = CLIENTS[kind](
        stack, monitor_api, credentials_for(monitor_api, tmp_path / "n", None)
    )
    failure = refuse(REFUSALS[case], client, anonymous, db, ids)
    assert failure.exit_status is None
