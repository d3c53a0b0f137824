"""GetServers sets ``Server.trace`` when this monitor's view of a server changed health (issue 17).

Through the real service on MariaDB and SQLite: SubmitResults records path-relevant health
changes in ``traceroute_state``, the next GetServers that hands the server out asks for a trace
(once), and the ``traceroute_interval`` system setting throttles it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, seed, status_for
from sqlalchemy import select

from ntpmon.api import ipbytes
from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.db import admin
from ntpmon.db.tables import traceroute_state
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db

GOOD = "good"
TIMEOUT = "timeout"
REFUSED = "refused"
BIG_OFFSET = "offset"

Outcome = Callable[[pb.Server], pb.ServerStatus]
OUTCOMES: dict[str, Outcome] = {
    GOOD: status_for,
    TIMEOUT: lambda s: pb.ServerStatus(ticket=s.ticket, ip_bytes=s.ip_bytes, no_response=True),
    REFUSED: lambda s: pb.ServerStatus(
        ticket=s.ticket, ip_bytes=s.ip_bytes, error="read: connection refused"
    ),
    BIG_OFFSET: lambda s: status_for(s, offset_ms=5000),
}


class Agent:
    """One monitor's rounds against the service; results chosen per server IP."""

    def __init__(self, db, clock) -> None:
        self.clock = clock
        self.service = MonitorService(
            db, TicketSigner(StaticKeyring({1: b"k"})), clock, ApiMetrics()
        )
        self.call = CallInfo(MONITOR_NAME, "ntppool-agent/v4.1.5")

    def round(self, results: dict[str, str] | None = None) -> set[str]:
        """Advance 3 h (every server due), GetServers, submit; the IPs that came with trace."""
        self.clock.advance(3 * 3600)
        batch = self.service.get_servers(pb.GetServersRequest(mon_id=MONITOR_IP), self.call)
        statuses = []
        traced = set()
        for server in batch.servers:
            ip = ipbytes.canonical_text(ipbytes.from_bytes(server.ip_bytes))
            if server.trace:
                traced.add(ip)
            statuses.append(OUTCOMES[(results or {}).get(ip, GOOD)](server))
        request = pb.SubmitResultsRequest(
            version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id, list=statuses
        )
        assert self.service.submit_results(request, self.call).ok
        return traced


def test_health_changes_ask_for_one_trace_each(db, clock) -> None:
    ids = seed(db, clock)
    agent = Agent(db, clock)
    first, second, third = ("198.51.100.1", "198.51.100.2", "198.51.100.3")
    assert agent.round() == set()  # first view of every server: nothing changed
    assert agent.round({first: TIMEOUT, second: BIG_OFFSET}) == set()
    # the change is seen by the next GetServers: a trace for the timeout, not for the offset
    assert agent.round({first: TIMEOUT, third: REFUSED}) == {first}
    assert agent.round({first: GOOD}) == {third}  # refused counts as unreachable
    assert agent.round() == {first, third}  # back to good: also a path change
    assert agent.round() == set()
    with db.connect() as conn:
        states = {
            row.server_id: row.health
            for row in conn.execute(
                select(traceroute_state).where(traceroute_state.c.monitor_id == ids.monitor_id)
            )
        }
    assert states == dict.fromkeys(ids.server_ids, "good")


def test_interval_setting_throttles_and_defers(db, clock) -> None:
    seed(db, clock)
    with db.begin() as conn:
        admin.set_system_setting(
            conn, key="monitors", value={"traceroute_interval": "10h"}, now=clock.now()
        )
    agent = Agent(db, clock)
    server = "198.51.100.1"
    agent.round()
    agent.round({server: TIMEOUT})
    assert agent.round() == {server}  # asked at t; back to good is due at once ...
    assert agent.round() == set()  # ... but deferred: t + 3 h < t + 10 h
    assert agent.round() == set()  # t + 6 h
    assert agent.round() == set()  # t + 9 h
    assert agent.round() == {server}  # t + 12 h: the deferred trace goes out once
    assert agent.round() == set()
