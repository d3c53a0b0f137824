"""Operator and seed writes (spec/database.md §12.8) on both dialects."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from ntpmon.common.clock import FixedClock
from ntpmon.db import admin
from ntpmon.db.models import IpVersion, MonitorStatus
from ntpmon.db.tables import monitors, server_scores, servers_monitor_review


def test_canonical_ips() -> None:
    assert admin.canonical_ip(" 2001:DB8:0::1 ") == "2001:db8::1"
    assert admin.ip_version_of("192.0.2.1") is IpVersion.V4
    assert admin.ip_version_of("::1") is IpVersion.V6
    with pytest.raises(ValueError):
        admin.canonical_ip("not-an-ip")


def test_servers_get_review_rows_and_unique_ips(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        sid = admin.create_server(conn, ip="2001:DB8::5", now=clock.now())
        server = admin.get_server_by_id(conn, id=sid)
        review = conn.execute(select(servers_monitor_review)).one()
    assert server is not None and (server.ip, server.ip_version) == ("2001:db8::5", "v6")
    assert (review.server_id, review.next_review) == (sid, None)
    with pytest.raises(IntegrityError), db.begin() as conn:
        admin.create_server(conn, ip="2001:db8::5", now=clock.now())


def test_assignment_follows_ip_version_and_liveness(db: Engine, clock: FixedClock) -> None:
    now = clock.now()
    with db.begin() as conn:
        v4a = admin.create_server(conn, ip="192.0.2.1", now=now)
        v4b = admin.create_server(conn, ip="192.0.2.2", now=now)
        v6 = admin.create_server(conn, ip="2001:db8::1", now=now)
        gone = admin.create_server(conn, ip="192.0.2.3", now=now)
        admin.schedule_server_deletion(conn, id=gone, on=now + timedelta(days=1))
        live = admin.create_monitor(
            conn,
            tls_name="a.devel.mon.ntppool.dev",
            ip="198.51.100.1",
            now=now,
            status=MonitorStatus.ACTIVE,
        )
        pending = admin.create_monitor(
            conn, tls_name="b.devel.mon.ntppool.dev", ip="198.51.100.2", now=now
        )
        admin.ensure_system_monitor(conn, ip_version=IpVersion.V4, config={"samples": 3}, now=now)
        assert admin.assign_monitor_to_servers(conn, monitor_id=live, now=now) == 2
        assert admin.assign_monitor_to_servers(conn, monitor_id=live, now=now) == 0  # kept
        assert admin.assign_monitor_to_servers(conn, monitor_id=pending, now=now) == 0
        v4c = admin.create_server(conn, ip="192.0.2.4", now=now)
        assert admin.assign_server_to_monitors(conn, server_id=v4c, now=now) == 1
        pairs = set(
            conn.execute(
                select(
                    server_scores.c.server_id, server_scores.c.monitor_id, server_scores.c.status
                )
            ).all()
        )
    assert pairs == {(v4a, live, "candidate"), (v4b, live, "candidate"), (v4c, live, "candidate")}
    assert v6 not in {p[0] for p in pairs}


def test_monitor_status_and_deletion(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        mid = admin.create_monitor(
            conn,
            tls_name="c.devel.mon.ntppool.dev",
            ip="2001:db8::9",
            now=clock.now(),
            config={"samples": 5},
        )
        assert (
            admin.set_monitor_status(conn, id=mid, status=MonitorStatus.TESTING, now=clock.now())
            == 1
        )
        assert [m.id for m in admin.list_monitors(conn)] == [mid]
        admin.set_monitor_status(conn, id=mid, status=MonitorStatus.DELETED, now=clock.now())
        monitor = admin.get_monitor_by_id(conn, id=mid)
        assert admin.list_monitors(conn) == []
        assert [m.id for m in admin.list_monitors(conn, include_deleted=True)] == [mid]
    assert monitor is not None
    assert (monitor.status, monitor.ip_version, json.loads(monitor.config)) == (
        "deleted",
        "v6",
        {"samples": 5},
    )
    assert monitor.deleted_on is not None


def test_system_monitor_is_updated_in_place(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        first = admin.ensure_system_monitor(
            conn, ip_version=IpVersion.V6, config={"a": 1}, now=clock.now()
        )
        again = admin.ensure_system_monitor(
            conn, ip_version=IpVersion.V6, config={"a": 2}, now=clock.now()
        )
        row = conn.execute(
            select(monitors.c.tls_name, monitors.c.config).where(monitors.c.id == first)
        ).one()
    assert first == again
    assert row.tls_name == "settings-v6.system" and json.loads(row.config) == {"a": 2}


def test_account_flags_are_json(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        aid = admin.create_account(
            conn, name="x", now=clock.now(), flags={"monitors_per_server_limit": 3}
        )
        account = admin.get_account(conn, id=aid)
    assert account is not None
    assert json.loads(account.flags or "") == {"monitors_per_server_limit": 3}
