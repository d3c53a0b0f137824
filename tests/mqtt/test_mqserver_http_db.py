"""The internal HTTP API's input checks over a real socket, and the monitor-row loader on both
database dialects (api.md §10.4, §11)."""

from __future__ import annotations

import httpx
import pytest
from mqtt_testkit import SHARED_BROKER, MonitorTable, running_server
from sqlalchemy import Engine

from ntpmon.api.mqserver.service import monitor_loader
from ntpmon.common.clock import FixedClock
from ntpmon.db.admin import create_monitor
from ntpmon.db.models import MonitorStatus

NAME = "uspao1-21wase0.devel.mon.ntppool.dev"


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("not-an-ip", "invalid IP address 'not-an-ip'"),
        ("10.0.0.1", "10.0.0.1 is a private address; only public addresses can be checked"),
        ("127.0.0.1", "127.0.0.1 is a loopback address; only public addresses can be checked"),
        ("fd00::1", "fd00::1 is a private address; only public addresses can be checked"),
    ],
)
def test_check_refuses_bad_targets_with_400(prefix: str, ip: str, message: str) -> None:
    with running_server(SHARED_BROKER, prefix, MonitorTable(), allow_private_targets=False) as api:
        reply = httpx.post(f"http://127.0.0.1:{api.http.port}/check/ntp/{ip}")
        assert reply.status_code == 400
        assert reply.json() == {"error": message}
        assert reply.headers["Traceparent"]


def test_check_without_agents_is_empty_list(prefix: str) -> None:
    with running_server(SHARED_BROKER, prefix, MonitorTable()) as api:
        base = f"http://127.0.0.1:{api.http.port}"
        reply = httpx.post(f"{base}/check/ntp/192.0.2.1", data={"all": "true"})
        assert (reply.status_code, reply.json()) == (200, [])
        assert httpx.get(f"{base}/monitors/online").json() == []
        assert httpx.get(f"{base}/monitors/metrics/discovery").json() == []
        assert httpx.get(f"{base}/check/ntp/192.0.2.1").status_code == 405


@pytest.mark.db
def test_monitor_loader_reads_current_rows(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        create_monitor(
            conn,
            tls_name=NAME,
            ip="192.0.2.1",
            now=clock.now(),
            status=MonitorStatus.ACTIVE,
            hostname="uspao1",
        )
        create_monitor(
            conn,
            tls_name=NAME,
            ip="2001:db8::1",
            now=clock.now(),
            status=MonitorStatus.TESTING,
            hostname="uspao1",
        )
        create_monitor(
            conn, tls_name="other-1.devel.mon.ntppool.dev", ip="192.0.2.9", now=clock.now()
        )
    rows = monitor_loader(db)(NAME)
    assert [(r.tls_name, r.ip_version) for r in rows] == [(NAME, "v4"), (NAME, "v6")]
    assert monitor_loader(db)("nobody.devel.mon.ntppool.dev") == []
