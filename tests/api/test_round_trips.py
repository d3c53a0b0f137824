"""A SubmitResults batch costs the same number of round trips whatever its size."""

from __future__ import annotations

import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, seed, status_for
from sqlalchemy import update

from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.db import admin
from ntpmon.db.tables import monitors, servers
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.roundtrips import counting_round_trips

pytestmark = pytest.mark.db


def _round_trips(db, fn) -> dict[str, int]:
    with counting_round_trips(db) as counts:
        fn()
    counts.pop("PING", None)  # the test engine's pool pings at checkout; the server's does not
    return dict(counts)


@pytest.mark.parametrize("stratum_changes", [False, True])
def test_statements_per_batch_do_not_grow_with_its_size(db, clock, stratum_changes):
    ids = seed(db, clock)
    with db.begin() as conn:
        for i in range(47):
            admin.create_server(conn, ip=f"203.0.113.{i + 1}", now=clock.now())
        admin.assign_monitor_to_servers(conn, monitor_id=ids.monitor_id, now=clock.now())
        admin.set_system_setting(conn, key="monitors", value={"batch_size": 50}, now=clock.now())
        if not stratum_changes:
            conn.execute(update(servers).values(stratum=2))
    service = MonitorService(db, TicketSigner(StaticKeyring({1: b"k"})), clock, ApiMetrics())
    call = CallInfo(MONITOR_NAME, "ntppool-agent/v4.1.5")
    counts = {}
    for size in (1, 10, 50):
        with db.begin() as conn:  # every server due again, no batch seen yet
            conn.execute(update(monitors).values(last_submit=None))
        clock.advance(3 * 3600)
        batch = service.get_servers(pb.GetServersRequest(mon_id=MONITOR_IP), call)
        request = pb.SubmitResultsRequest(
            version=4,
            mon_id=MONITOR_IP,
            batch_id=batch.batch_id,
            list=[status_for(s) for s in batch.servers[:size]],
        )
        assert len(request.list) == size
        counts[size] = _round_trips(db, lambda r=request: service.submit_results(r, call))
    # the lookup and its commit (a transaction of its own, see MonitorService.submit_results);
    # guarded last_submit, read of servers + assignments, CASE update, insert, commit; plus
    # the servers' strata when they change, plus SQLite's explicit BEGIN IMMEDIATE (x2);
    # and, because every server is seen for the first time here, one multi-row upsert of their
    # traceroute states (issue 17; the states themselves come with the assignments read)
    expected = {"SELECT": 2, "UPDATE": 2 + stratum_changes, "INSERT": 2, "COMMIT": 2}
    if db.dialect.name == "sqlite":
        expected["BEGIN"] = 2
    assert counts == {1: expected, 10: expected, 50: expected}


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        # lookup, last_seen, selection, queue stamp, commit
        (True, {"SELECT": 2, "UPDATE": 2, "COMMIT": 1}),
        # nothing due: no queue stamp
        (False, {"SELECT": 2, "UPDATE": 1, "COMMIT": 1}),
    ],
    ids=["servers due", "nothing due"],
)
def test_get_servers_round_trips(db, clock, due, expected):
    seed(db, clock)
    service = MonitorService(db, TicketSigner(StaticKeyring({1: b"k"})), clock, ApiMetrics())
    call = CallInfo(MONITOR_NAME, "ntppool-agent/v4.1.5")
    request = pb.GetServersRequest(mon_id=MONITOR_IP)
    assert len(service.get_servers(request, call).servers) == 3  # and the settings are cached
    if due:
        clock.advance(3 * 3600)
    counts = _round_trips(db, lambda: service.get_servers(request, call))
    if db.dialect.name == "sqlite":
        expected = {**expected, "BEGIN": 1}
    assert counts == expected
