"""The exporter against a real ClickHouse engine (chDB) and a real database (MariaDB, SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from ntpmon.analytics.archive import Archive
from ntpmon.analytics.exporter import Exporter
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.common.clock import FixedClock
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import LOG_SCORES, exported_ids, server_history
from ntpmon.db.tables import log_scores
from ntpmon.testing.logseed import AGENT, seed_log_scores, seed_world


def _exporter(db: Engine, archive: Archive, clock: FixedClock, batch: int) -> Exporter:
    return Exporter(db, archive, batch_size=batch, metrics=AnalyticsMetrics(), clock=clock)


def test_rows_arrive_once_in_id_order_and_the_lag_goes_to_zero(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    servers = seed_world(db, servers_count=3, now=clock.now())
    start = clock.now() - timedelta(hours=2)
    first, last = seed_log_scores(db, servers, start=start, count=300)
    exporter = _exporter(db, archive, clock, batch=64)

    before = exporter.lag()
    assert (before.cursor, before.rows) == (0, 300)
    assert before.seconds == (clock.now() - start.replace(microsecond=0)).total_seconds()

    assert exporter.run(max_batches=2) == 128
    assert exporter.lag().rows == 300 - 128
    with db.connect() as conn:
        assert q.get_export_cursor(conn, "log_scores") == first + 127
    assert exporter.run() == 300 - 128
    assert exporter.run() == 0

    after = exporter.lag()
    assert (after.cursor, after.rows, after.seconds) == (last, 0, 0.0)
    reg = exporter.metrics.registry
    assert reg.get_sample_value("analytics_export_rows_total", {"stream": "log_scores"}) == 300
    assert reg.get_sample_value("analytics_export_lag_rows", {"stream": "log_scores"}) == 0
    assert reg.get_sample_value("analytics_export_cursor", {"stream": "log_scores"}) == last
    with archive.session() as client:
        assert exported_ids(client, LOG_SCORES) == (300, 300, last)


def test_copied_rows_equal_the_database_rows_and_a_repeat_folds_by_id(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    servers = seed_world(db, servers_count=2, now=clock.now())
    seed_log_scores(db, servers, start=clock.now() - timedelta(hours=1), count=50)
    exporter = _exporter(db, archive, clock, batch=20)
    exporter.run()
    with db.begin() as conn:  # as after a crash between the insert and the cursor update
        last = q.get_export_cursor(conn, "log_scores")
        assert q.advance_export_cursor(conn, "log_scores", old=last or 0, new=0)
    assert exporter.run() == 50
    with db.connect() as conn:
        rows = conn.execute(
            select(log_scores).where(log_scores.c.server_id == servers[0]).order_by(log_scores.c.id)
        ).all()
    with archive.session() as client:
        folded, stored, _ = exported_ids(client, LOG_SCORES)
        got = server_history(
            client,
            server_id=servers[0],
            since=clock.now() - timedelta(days=30),
            until=clock.now() + timedelta(seconds=1),
        )
    assert (folded, stored >= 50) == (50, True)  # a copy may be stored until a merge folds it
    assert [(p.monitor_id, p.ts, p.score, p.step, p.offset, p.rtt) for p in got] == [
        (r.monitor_id, r.ts, r.score, r.step, r.offset, r.rtt) for r in rows
    ]


def test_thirty_day_history_of_one_server_full_and_downsampled(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    """40 days of one row an hour over two servers: the 30-day window, per server, per bucket."""
    servers = seed_world(db, servers_count=2, now=clock.now())
    now = clock.now().replace(microsecond=0)
    start = now - timedelta(days=40)
    seed_log_scores(db, servers, start=start, count=40 * 48, spacing=timedelta(minutes=30))
    _exporter(db, archive, clock, batch=500).run()
    since = now - timedelta(days=30)
    with db.connect() as conn:
        expected = conn.execute(
            select(log_scores.c.ts, log_scores.c.score)
            .where(
                log_scores.c.server_id == servers[1], log_scores.c.ts >= since.replace(tzinfo=None)
            )
            .order_by(log_scores.c.ts)
        ).all()
    with archive.session() as client:
        full = server_history(client, server_id=servers[1], since=since, until=now)
        daily = server_history(client, server_id=servers[1], since=since, until=now, bucket_s=86400)
        capped = server_history(client, server_id=servers[1], since=since, until=now, max_id=0)
    assert [(p.ts, p.score) for p in full] == [tuple(r) for r in expected]
    assert {p.monitor_id for p in full} == {AGENT}
    assert len(expected) == 30 * 24
    # one point per UTC day, the day's last row: 30 days from noon touch 31 days
    assert len(daily) == 31
    assert all(p.ts.hour == 23 for p in daily[:-1])
    assert (daily[-1].ts, daily[-1].score) == tuple(expected[-1])
    assert capped == []


def test_naive_timestamps_are_utc_whatever_the_local_zone(
    db: Engine, archive: Archive, clock: FixedClock, monkeypatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        servers = seed_world(db, servers_count=1, now=clock.now())
        ts = datetime(2026, 11, 20, 3, 4, 5)
        seed_log_scores(db, servers, start=ts.replace(tzinfo=UTC), count=1)
        _exporter(db, archive, clock, batch=10).run()
        with archive.session() as client:
            got = server_history(
                client, server_id=servers[0], since=ts - timedelta(seconds=1), until=clock.now()
            )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [p.ts for p in got] == [ts]
