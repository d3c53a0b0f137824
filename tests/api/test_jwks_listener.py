"""An external issuer's JWTs through the real RPC listener: ``monitor-api server`` started with
``jwt_issuer`` and ``jwks_ca_file`` fetches the issuer's JWKS over HTTPS on loopback.

ES384 and RS256 tokens of that issuer work for all three methods over Connect (buf curl,
connect-go) and gRPC (grpcio), with no client certificate; tokens with the wrong issuer,
audience or scope, expired ones and HS256 forgeries are UNAUTHENTICATED and change nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from api_testkit import MONITOR_NAME, loopback_options, seed, serving
from jwks_testkit import (
    JwksServer,
    Keys,
    claims,
    es384,
    hs256_with_public_key,
    rs256,
)
from outside_clients import (
    BufCurl,
    ClientOf,
    Credentials,
    RpcClient,
    expect_refused,
    full_round,
    grpcio_client,
    rpc_url,
    submission,
    write_credentials,
)

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.runner import MonitorApiServer

pytestmark = [pytest.mark.db, pytest.mark.e2e]

TokenOf = Callable[[Keys, str], str]
HOUR = 3600


@pytest.fixture
def external_api(db, clock, ca: EmbeddedCA, issuer: JwksServer, tmp_path: Path):
    """monitor-api trusting ``issuer``; the JWKS fetch trusts the test CA that signed the
    issuer's HTTPS certificate, and nothing else."""
    ca_file = tmp_path / "jwks-ca.pem"
    ca_file.write_text(ca.root_pem())
    options = loopback_options(
        db, tmp_path / "data", clock=clock, jwt_issuer=issuer.issuer, jwks_ca_file=ca_file
    )
    with serving(options) as server:
        yield server


def _buf_connect(buf_schema: tuple[Path, Path]) -> ClientOf:
    def make(stack: ExitStack, server: MonitorApiServer, creds: Credentials) -> RpcClient:
        return BufCurl(*buf_schema, rpc_url(server), "connect", creds)

    return make


@pytest.fixture(params=["buf curl Connect", "grpcio"])
def client_of(request: pytest.FixtureRequest) -> ClientOf:
    if request.param == "grpcio":
        return grpcio_client
    return _buf_connect(request.getfixturevalue("buf_schema"))


def _token_client(
    client_of: ClientOf, stack: ExitStack, server: MonitorApiServer, directory: Path, token: str
) -> RpcClient:
    """A client with the token and no client certificate."""
    return client_of(stack, server, write_credentials(server.ca, directory, token=token))


def _es384(k: Keys, iss: str, /, **over: object) -> str:
    return es384(k, iss, sub=MONITOR_NAME, **over)


def _rs256(k: Keys, iss: str, /, **over: object) -> str:
    return rs256(k, iss, sub=MONITOR_NAME, **over)


@pytest.mark.parametrize("token_of", [_es384, _rs256], ids=["ES384", "RS256"])
def test_issuer_tokens_work_for_every_method(
    token_of: TokenOf, client_of, keys, issuer, external_api, db, clock, tmp_path, stack
):
    ids = seed(db, clock)
    token = token_of(keys, issuer.issuer)
    full_round(_token_client(client_of, stack, external_api, tmp_path, token), db, ids)
    assert issuer.paths == ["/.well-known/jwks.json"]


REFUSED: dict[str, TokenOf] = {
    "wrong issuer": lambda k, i: _es384(k, i, iss="https://api.ntppool.dev"),
    "wrong audience": lambda k, i: _rs256(k, i, aud="website"),
    "read scope submitting": lambda k, i: _es384(k, i, scope="monitor:read"),
    "openid scope": lambda k, i: _rs256(k, i, scope="openid profile"),
    "expired": lambda k, i: _es384(k, i, iat=claims(i)["iat"] - HOUR, exp=claims(i)["iat"] - 1),
    "HS256 keyed with the public key": lambda k, i: hs256_with_public_key(
        k.rs256.public_key(), "rs256", claims(i, sub=MONITOR_NAME)
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_issuer_tokens_are_unauthenticated_and_change_nothing(
    case, client_of, keys, issuer, external_api, db, clock, tmp_path, stack
):
    seed(db, clock)
    good = _token_client(
        client_of, stack, external_api, tmp_path / "good", _es384(keys, issuer.issuer)
    )
    request = submission(good)
    bad_token = REFUSED[case](keys, issuer.issuer)
    bad = _token_client(client_of, stack, external_api, tmp_path / "bad", bad_token)
    failure = expect_refused(bad, "SubmitResults", request, db, grpc.StatusCode.UNAUTHENTICATED)
    assert failure.message == "Invalid JWT token"


def test_server_help_lists_the_listener_options():
    exe = Path(sys.executable).parent / "monitor-api"
    done = subprocess.run(
        [str(exe), "server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--jwt-issuer", "--jwks-url", "--jwks-ca-file", "--tls.cert", "--client-ca"):
        assert flag in done.stdout, flag
