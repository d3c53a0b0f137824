"""Q1-Q5 and Q36 on both dialects, with the spec's edge cases (spec/database.md §4.1, §8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select

from ntpmon.common.clock import FixedClock
from ntpmon.db import admin
from ntpmon.db.common import (
    RTT_MAX_US,
    delete_server_score,
    get_server_score,
    get_system_setting,
    insert_log_score,
    insert_log_scores,
    log_score_values,
    update_server_score,
    update_server_score_status,
)
from ntpmon.db.models import LogScore, MonitorStatus, ServerScoreStatus, from_row
from ntpmon.db.tables import log_scores, monitors


def seed(db: Engine, clock: FixedClock) -> tuple[int, int]:
    """One server and one live monitor assigned to it; returns (server_id, monitor_id)."""
    now = clock.now()
    with db.begin() as conn:
        account = admin.create_account(conn, name="acct", now=now)
        server = admin.create_server(conn, ip="192.0.2.10", now=now, account_id=account)
        monitor = admin.create_monitor(
            conn,
            tls_name="m1.devel.mon.ntppool.dev",
            ip="198.51.100.1",
            now=now,
            account_id=account,
            status=MonitorStatus.TESTING,
        )
        admin.assign_monitor_to_servers(conn, monitor_id=monitor, now=now)
    return server, monitor


def test_system_setting_roundtrip(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        assert get_system_setting(conn, key="monitors") is None
        admin.set_system_setting(conn, key="monitors", value={"batch_size": 7}, now=clock.now())
        admin.set_system_setting(conn, key="monitors", value={"batch_size": 9}, now=clock.now())
        assert json.loads(get_system_setting(conn, key="monitors") or "") == {"batch_size": 9}


def test_server_score_read_update(db: Engine, clock: FixedClock) -> None:
    server, monitor = seed(db, clock)
    with db.begin() as conn:
        row = get_server_score(conn, server_id=server, monitor_id=monitor)
        assert row is not None
        assert (row.status, row.score_raw, row.score_ts) == ("candidate", 0.0, None)
        assert get_server_score(conn, server_id=server, monitor_id=monitor + 999) is None
        assert update_server_score(conn, id=row.id, score_ts=clock.now(), score_raw=12.5) == 1
        assert (
            update_server_score_status(
                conn, monitor_id=monitor, server_id=server, status=ServerScoreStatus.ACTIVE
            )
            == 1
        )
        after = get_server_score(conn, server_id=server, monitor_id=monitor)
    assert after is not None
    assert after.score_raw == 12.5
    assert after.status == "active"
    # datetime(0): fractional seconds are truncated (never rounded) on every dialect
    assert after.score_ts == datetime(2026, 11, 26, 12, 0, 0)


def test_times_are_stored_as_utc(db: Engine, clock: FixedClock) -> None:
    server, monitor = seed(db, clock)
    plus_two = datetime(2026, 11, 26, 14, 30, 59, 999999, tzinfo=timezone(timedelta(hours=2)))
    with db.begin() as conn:
        ident = insert_log_score(
            conn, server_id=server, monitor_id=monitor, ts=plus_two, score=1.0, step=1.0
        )
        row = conn.execute(select(log_scores).where(log_scores.c.id == ident)).one()
    assert row.ts == datetime(2026, 11, 26, 12, 30, 59)


def test_log_score_offset_rtt_attributes(db: Engine, clock: FixedClock) -> None:
    server, monitor = seed(db, clock)
    with db.begin() as conn:
        ident = insert_log_score(
            conn,
            server_id=server,
            monitor_id=monitor,
            ts=clock.now(),
            score=-4.5,
            step=-4.0,
            offset=-0.000123456789,
            rtt=99_000_000,
            attributes='{"error":"i/o timeout \U0001f600"}',
        )
        none_id = insert_log_score(
            conn, server_id=server, monitor_id=monitor, ts=clock.now(), score=0, step=0
        )
        rows = {r.id: from_row(LogScore, r) for r in conn.execute(select(log_scores))}
    assert rows[ident].offset == -0.000123456789
    assert rows[ident].rtt == RTT_MAX_US  # clamped to the mediumint range
    assert json.loads(rows[ident].attributes or "") == {"error": "i/o timeout \ufffd"}
    assert (rows[none_id].offset, rows[none_id].rtt, rows[none_id].attributes) == (None, None, None)
    assert ident < none_id


def test_bulk_log_scores(db: Engine, clock: FixedClock) -> None:
    server, monitor = seed(db, clock)
    rows = [
        log_score_values(
            server_id=server,
            monitor_id=monitor,
            ts=clock.now() + timedelta(seconds=i),
            score=float(i),
            step=1.0,
            offset=i / 1000,
            rtt=i * 1000,
            attributes=None,
        )
        for i in range(50)
    ]
    with db.begin() as conn:
        assert insert_log_scores(conn, rows) == 50
        assert insert_log_scores(conn, []) == 0
        stored = conn.execute(
            select(log_scores.c.score, log_scores.c.offset).order_by(log_scores.c.id)
        ).all()
    assert [tuple(r) for r in stored] == [(float(i), i / 1000) for i in range(50)]


def test_delete_server_score(db: Engine, clock: FixedClock) -> None:
    server, monitor = seed(db, clock)
    with db.begin() as conn:
        assert delete_server_score(conn, server_id=server, monitor_id=monitor) == 1
        assert get_server_score(conn, server_id=server, monitor_id=monitor) is None
        assert delete_server_score(conn, server_id=server, monitor_id=monitor) == 0


def test_datetime6_keeps_microseconds(db: Engine, clock: FixedClock) -> None:
    from sqlalchemy import update

    from ntpmon.common.clock import db_micros

    _, monitor = seed(db, clock)
    with db.begin() as conn:
        conn.execute(
            update(monitors)
            .where(monitors.c.id == monitor)
            .values(last_seen=db_micros(clock.now()))
        )
        seen = conn.execute(
            select(monitors.c.last_seen).where(monitors.c.id == monitor)
        ).scalar_one()
    assert seen == datetime(2026, 11, 26, 12, 0, 0, 123456)


@pytest.mark.parametrize("status", ["bogus", ""])
def test_enum_rejects_unknown_values(db: Engine, clock: FixedClock, status: str) -> None:
    from sqlalchemy.exc import DBAPIError, StatementError

    server, monitor = seed(db, clock)
    with pytest.raises((DBAPIError, StatementError)), db.begin() as conn:
        update_server_score_status(conn, monitor_id=monitor, server_id=server, status=status)
    with db.begin() as conn:
        row = get_server_score(conn, server_id=server, monitor_id=monitor)
    assert row is not None and row.status == "candidate"


def test_fixed_clock_is_aware_utc(clock: FixedClock) -> None:
    assert clock.now().tzinfo is UTC
