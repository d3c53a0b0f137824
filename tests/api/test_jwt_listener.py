"""The JWT-only gRPC listener: tokens from the management API, refusals change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import jwt
import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, loopback_options, seed, snapshot
from cryptography.hazmat.primitives.asymmetric import ec

from ntpmon.api.oidc import TokenIssuer
from ntpmon.api.runner import MonitorApiServer
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.db, pytest.mark.e2e]
ISSUER = "https://mon.example.test"


@pytest.fixture
def server(db, tmp_path) -> Iterator[MonitorApiServer]:
    running = MonitorApiServer(
        loopback_options(db, tmp_path, jwt_listen="127.0.0.1:0", public_url=ISSUER)
    )
    running.wait_ready()
    try:
        yield running
    finally:
        running.stop()


def _stub(server: MonitorApiServer) -> tuple[grpc.Channel, pb_grpc.MonitorServiceStub]:
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.ports['rpc_jwt']}",
        grpc.ssl_channel_credentials(root_certificates=server.ca.root_pem().encode()),
    )
    return channel, pb_grpc.MonitorServiceStub(channel)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, object] = {
        "sub": MONITOR_NAME,
        "aud": "monitor-api",
        "iss": ISSUER,
        "scope": "monitor:rpc",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(server: MonitorApiServer, tmp_path, claims: dict[str, object], alg="ES256") -> str:
    same_key = TokenIssuer.load_or_create(tmp_path / "jwt" / "signing.key", ISSUER)
    return jwt.encode(claims, same_key._key, algorithm=alg, headers={"kid": same_key.kid})


def test_a_minted_token_works_for_every_rpc(db, clock, server):
    seed(db, clock)
    token, _ = server.tokens.mint(MONITOR_NAME, 600, datetime.now(UTC))
    channel, stub = _stub(server)
    auth = [("authorization", f"Bearer {token}")]
    with channel:
        config = stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP), metadata=auth)
        batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP), metadata=auth)
        reply = stub.SubmitResults(
            pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id),
            metadata=auth,
        )
    assert config.ip_bytes == bytes([192, 0, 2, 10])
    assert len(batch.servers) == 3
    assert reply.ok


def _bad_tokens(server, tmp_path) -> dict[str, tuple[str, str, str]]:
    other = ec.generate_private_key(ec.SECP256R1())
    old = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    return {
        "no token": ("", "GetConfig", "Authentication required"),
        "lower-case bearer": ("bearer x", "GetConfig", "Authentication required"),
        "garbage": ("Bearer garbage", "GetConfig", "Invalid JWT token"),
        "other key": (
            "Bearer " + jwt.encode(_claims(), other, algorithm="ES256"),
            "GetConfig",
            "Invalid JWT token",
        ),
        "HS256": (
            "Bearer " + jwt.encode(_claims(), "secret-" * 8, algorithm="HS256"),
            "GetConfig",
            "Invalid JWT token",
        ),
        "expired": (
            "Bearer " + _signed(server, tmp_path, _claims(iat=old, exp=old + 60)),
            "GetConfig",
            "Invalid JWT token",
        ),
        "no exp": (
            "Bearer " + _signed(server, tmp_path, _claims(exp=None)),
            "GetConfig",
            "Invalid JWT token",
        ),
        "issuer with slash": (
            "Bearer " + _signed(server, tmp_path, _claims(iss=ISSUER + "/")),
            "GetConfig",
            "Invalid JWT token",
        ),
        "other audience": (
            "Bearer " + _signed(server, tmp_path, _claims(aud=["other"])),
            "GetConfig",
            "Invalid JWT token",
        ),
        "scope openid": (
            "Bearer " + _signed(server, tmp_path, _claims(scope="openid profile")),
            "GetServers",
            "Invalid JWT token",
        ),
        "read scope submitting": (
            "Bearer " + _signed(server, tmp_path, _claims(scope="monitor:read")),
            "SubmitResults",
            "Invalid JWT token",
        ),
        "empty subject": (
            "Bearer " + _signed(server, tmp_path, _claims(sub="")),
            "GetConfig",
            "Invalid JWT token",
        ),
        "subject of 129 chars": (
            "Bearer " + _signed(server, tmp_path, _claims(sub="x" * 129)),
            "GetConfig",
            "Invalid JWT token",
        ),
        "longer than 3072 bytes": (
            "Bearer " + _signed(server, tmp_path, _claims(pad="x" * 3000)),
            "GetConfig",
            "Invalid JWT token",
        ),
    }


CASES = [
    "no token",
    "lower-case bearer",
    "garbage",
    "other key",
    "HS256",
    "expired",
    "no exp",
    "issuer with slash",
    "other audience",
    "scope openid",
    "read scope submitting",
    "empty subject",
    "subject of 129 chars",
    "longer than 3072 bytes",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_tokens_are_unauthenticated_and_change_nothing(case, db, clock, server, tmp_path):
    seed(db, clock)
    header, method, message = _bad_tokens(server, tmp_path)[case]
    requests = {
        "GetConfig": pb.GetConfigRequest(mon_id=MONITOR_IP),
        "GetServers": pb.GetServersRequest(mon_id=MONITOR_IP),
        "SubmitResults": pb.SubmitResultsRequest(version=4, mon_id=MONITOR_IP),
    }
    before = snapshot(db)
    channel, stub = _stub(server)
    metadata = [("authorization", header)] if header else []
    with channel, pytest.raises(grpc.RpcError) as err:
        getattr(stub, method)(requests[method], metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == message
    assert snapshot(db) == before
