"""Losing the database (issue 15, item 5): MariaDB behind a loopback TCP proxy the test cuts
(connections closed) and blackholes (nothing forwarded, as in a partition). Every RPC answers
UNAVAILABLE, which clients retry, not INTERNAL, and it does so well within the client's
deadline because the driver has timeouts; the access log and the metric record the same code;
once the proxy forwards again the service recovers by itself, and the batch refused during the
outage is accepted exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import grpc
import pytest
from api_testkit import MONITOR_IP, RunningApi, running_api, seed, status_for
from sqlalchemy import Engine, func, select

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.service import PING_AFTER_IDLE
from ntpmon.common.clock import FixedClock
from ntpmon.db.config import DatabaseSettings
from ntpmon.db.engine import create_db_engine
from ntpmon.db.tables import log_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.tcpproxy import TcpProxy

pytestmark = [
    pytest.mark.db,
    pytest.mark.parametrize("db_engine", ["mariadb"], indirect=True),  # SQLite has no network
]

TIMEOUTS = {"connect_timeout": "2", "read_timeout": "2", "write_timeout": "2"}  # in the DSN
CLIENT_DEADLINE = 120.0  # generous: the answer must come from the server, not the deadline
OUTAGES: dict[str, Callable[[TcpProxy], None]] = {
    "cut": TcpProxy.cut,
    "blackhole": TcpProxy.blackhole,
}


@pytest.fixture
def proxy(db: Engine) -> Iterator[TcpProxy]:
    with TcpProxy((db.url.host or "127.0.0.1", db.url.port or 3306)) as running:
        yield running


@pytest.fixture
def api_via_proxy(
    db: Engine, proxy: TcpProxy, clock: FixedClock, ca: EmbeddedCA
) -> Iterator[RunningApi]:
    """The RPC service on an engine that reaches MariaDB only through ``proxy``, with short
    driver timeouts and the pool settings of ``monitor-api server``."""
    url = db.url.set(host="127.0.0.1", port=proxy.port).update_query_dict(TIMEOUTS)
    engine = create_db_engine(DatabaseSettings(url=url), ping_after_idle=PING_AFTER_IDLE)
    try:
        with running_api(engine, clock, ca) as api:
            yield api
    finally:
        engine.dispose()


def submission(batch: pb.GetServersResponse) -> pb.SubmitResultsRequest:
    return pb.SubmitResultsRequest(
        version=4,
        mon_id=MONITOR_IP,
        batch_id=batch.batch_id,
        list=[status_for(s) for s in batch.servers],
    )


def results_recorded(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(log_scores)).scalar_one())


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_database_loss_is_unavailable_then_recovers_without_loss_or_double(
    outage, db, clock, proxy, api_via_proxy, caplog
):
    api = api_via_proxy
    seed(db, clock)
    channel, stub = api.stub(api.client_cert())
    with channel:
        first = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP), timeout=CLIENT_DEADLINE)
        assert stub.SubmitResults(submission(first), timeout=CLIENT_DEADLINE).ok
        clock.advance(24 * 3600)  # every server is due again
        pending = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
        assert len(pending.servers) == 3
        assert results_recorded(db) == 3

        OUTAGES[outage](proxy)
        calls = {
            "GetConfig": (stub.GetConfig, pb.GetConfigRequest(mon_id=MONITOR_IP)),
            "GetServers": (stub.GetServers, pb.GetServersRequest(mon_id=MONITOR_IP)),
            "SubmitResults": (stub.SubmitResults, submission(pending)),
        }
        with caplog.at_level(logging.INFO, logger="ntpmon.api.access"):
            for method, (call, request) in calls.items():
                with pytest.raises(grpc.RpcError) as err:
                    call(request, timeout=CLIENT_DEADLINE)
                assert err.value.code() is grpc.StatusCode.UNAVAILABLE, (method, err.value)
                assert err.value.details() == "database unavailable"
                assert api.rpc_count(method, "UNAVAILABLE") == 1
                assert api.rpc_count(method, "INTERNAL") == 0
        access = [(r.method, r.code) for r in caplog.records if r.name == "ntpmon.api.access"]
        assert access == [(method, "UNAVAILABLE") for method in calls]
        assert proxy.accepted > 1  # the service did try to reach the database again
        assert results_recorded(db) == 3  # nothing of the refused batch was written

        proxy.restore()
        assert stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP), timeout=CLIENT_DEADLINE)
        assert stub.SubmitResults(submission(pending), timeout=CLIENT_DEADLINE).ok
        with pytest.raises(grpc.RpcError) as again:
            stub.SubmitResults(submission(pending), timeout=CLIENT_DEADLINE)
        assert again.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert results_recorded(db) == 6  # both batches, each once
