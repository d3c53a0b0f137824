"""Seeded data for the status-page tests: servers, agent monitors, a scorer and history."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, update

from ntpmon.common.clock import FixedClock, db_micros, db_seconds
from ntpmon.db import admin
from ntpmon.db.common import insert_log_scores, log_score_values, update_server_score_status
from ntpmon.db.models import IpVersion, MonitorStatus
from ntpmon.db.tables import monitors, server_scores, servers

HISTORY_HOURS = 6
STEP_MINUTES = 5


@dataclasses.dataclass(frozen=True)
class Seeded:
    good: int
    bad: int
    v6: int
    mon_a: int
    mon_b: int
    mon_v6: int
    scorer: int
    now: datetime
    rows_per_monitor: int


def _scorer_monitor(conn, now: datetime) -> int:
    """A ``type='score'`` row as ``monitor-scorer scorer setup`` creates it."""
    result = conn.execute(
        insert(monitors).values(
            type="score",
            hostname="recentmedian",
            location="",
            tls_name="recentmedian.scores.ntp.dev",
            status="active",
            config="",
            client_version="",
            created_on=db_seconds(now),
        )
    )
    return int(result.inserted_primary_key[0])


def seed(engine: Engine, clock: FixedClock) -> Seeded:
    """Three servers, three agents (one IPv6), a scorer, and 6 h of 5-minutely history."""
    now = clock.now()
    start = now - timedelta(hours=HISTORY_HOURS)
    with engine.begin() as conn:
        account = admin.create_account(conn, name="Example Org", now=start)
        good = admin.create_server(conn, ip="192.0.2.10", now=start, hostname="good.example")
        bad = admin.create_server(conn, ip="192.0.2.20", now=start)
        v6 = admin.create_server(conn, ip="2001:db8::1", now=start)
        admin.ensure_system_monitor(conn, ip_version=IpVersion.V4, config={}, now=start)
        mon_a, mon_b, mon_v6 = (
            admin.create_monitor(
                conn,
                tls_name=f"{name}.devel.mon.ntppool.dev",
                ip=ip,
                now=start,
                account_id=account_id,
                status=status,
            )
            for name, ip, account_id, status in (
                ("alpha-abc123", "127.0.0.2", account, MonitorStatus.ACTIVE),
                ("bravo-def456", "127.0.0.3", None, MonitorStatus.TESTING),
                ("charlie-ghi789", "::1", None, MonitorStatus.TESTING),
            )
        )
        scorer = _scorer_monitor(conn, start)
        for m in (mon_a, mon_b, mon_v6):
            admin.assign_monitor_to_servers(conn, monitor_id=m, now=start)
        update_server_score_status(conn, monitor_id=mon_a, server_id=good, status="active")
        update_server_score_status(conn, monitor_id=mon_b, server_id=good, status="testing")
        conn.execute(
            insert(server_scores).values(
                monitor_id=scorer, server_id=good, status="active", created_on=db_seconds(start)
            )
        )
        conn.execute(
            update(monitors)
            .where(monitors.c.id == mon_a)
            .values(
                client_version="v4.1.5",
                last_seen=db_micros(now - timedelta(seconds=30)),
                last_submit=db_micros(now - timedelta(seconds=40)),
            )
        )
        rows = []
        steps = HISTORY_HOURS * 60 // STEP_MINUTES
        for i in range(steps):
            ts = start + timedelta(minutes=STEP_MINUTES * (i + 1))
            score = min(20.0, -5 + i)
            for m, offset, lag in ((mon_a, 0.0004, 0), (mon_b, -0.002, 3)):
                rows.append(
                    log_score_values(
                        server_id=good,
                        monitor_id=m,
                        ts=ts,
                        score=score - lag,
                        step=1,
                        offset=offset,
                        rtt=1500,
                        attributes=None,
                    )
                )
            rows.append(
                log_score_values(
                    server_id=bad,
                    monitor_id=mon_a,
                    ts=ts,
                    score=-3.0 * i / steps,
                    step=-4,
                    offset=0.5,
                    rtt=2500,
                    attributes=None,
                )
            )
            rows.append(
                log_score_values(
                    server_id=good,
                    monitor_id=scorer,
                    ts=ts,
                    score=score,
                    step=1,
                    offset=None,
                    rtt=None,
                    attributes=None,
                )
            )
        insert_log_scores(conn, rows)
        conn.execute(
            update(servers)
            .where(servers.c.id == good)
            .values(score_raw=19.5, score_ts=db_seconds(now))
        )
        conn.execute(update(servers).where(servers.c.id == bad).values(score_raw=-3.0))
    return Seeded(
        good=good,
        bad=bad,
        v6=v6,
        mon_a=mon_a,
        mon_b=mon_b,
        mon_v6=mon_v6,
        scorer=scorer,
        now=now,
        rows_per_monitor=steps,
    )


@pytest.fixture
def seeded(db: Engine, clock: FixedClock) -> Seeded:
    return seed(db, clock)
