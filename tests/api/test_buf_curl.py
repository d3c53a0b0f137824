"""``buf curl`` (the Buf CLI, built on connect-go) against a real monitor-api.

connect-go is what upstream's server and the Go agents are made of, so these calls are the
closest a test gets to a Go client: Connect (HTTP/2 over TLS), gRPC and gRPC-Web, each with a
client certificate of the embedded CA and with a Bearer JWT and no certificate. Refusals carry
the code buf prints and its exit status (the gRPC code shifted left by three), and leave the
database as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from api_testkit import seed
from outside_clients import (
    AUTHS,
    PROTOCOLS,
    REFUSALS,
    BufCurl,
    credentials_for,
    full_round,
    refuse,
    rpc_url,
)

from ntpmon.api.rpc.codes import grpc_number
from ntpmon.api.runner import MonitorApiServer

pytestmark = [pytest.mark.db, pytest.mark.e2e]


def _buf(
    buf_schema: tuple[Path, Path], server: MonitorApiServer, protocol: str, creds_dir: Path, auth
) -> BufCurl:
    binary, schema = buf_schema
    creds = credentials_for(server, creds_dir, auth)
    return BufCurl(binary, schema, rpc_url(server), protocol, creds)


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_config_servers_and_a_whole_batch(
    protocol, auth, buf_schema, db, clock, monitor_api, tmp_path
):
    ids = seed(db, clock)
    full_round(_buf(buf_schema, monitor_api, protocol, tmp_path / "creds", auth), db, ids)


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refusals_print_the_code_and_change_nothing(
    protocol, case, buf_schema, db, clock, monitor_api, tmp_path
):
    ids = seed(db, clock)
    refusal = REFUSALS[case]
    client = _buf(buf_schema, monitor_api, protocol, tmp_path / "cert", AUTHS[0])
    anonymous = _buf(buf_schema, monitor_api, protocol, tmp_path / "none", None)
    failure = refuse(refusal, client, anonymous, db, ids)
    assert failure.exit_status == grpc_number(refusal.code) << 3
