"""The traceroutes stream against chDB and a real database: its own cursor, id order, each trace
exactly once, and the columns as MySQL has them."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import Engine, select

from ntpmon.analytics.archive import Archive
from ntpmon.analytics.exporter import Exporter, StreamsExporter
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.common.clock import FixedClock
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import (
    LOG_SCORES,
    TRACEROUTES,
    ClickHouseClient,
    exported_ids,
)
from ntpmon.db.tables import traceroutes
from ntpmon.testing.logseed import seed_log_scores, seed_traceroutes, seed_world


def _archived(client: ClickHouseClient) -> list[tuple[Any, ...]]:
    """Every stored trace once (``FINAL`` folds copies), in id order, timestamps naive UTC."""
    names = ", ".join(f"`{name}`" for name in TRACEROUTES.column_names)
    rows = client.query(f"SELECT {names} FROM traceroutes FINAL ORDER BY id").result_rows
    return [
        tuple(v.astimezone(UTC).replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in row)
        for row in rows
    ]


def _in_database(db: Engine) -> list[tuple[Any, ...]]:
    columns = [traceroutes.c[name] for name in TRACEROUTES.column_names]
    with db.connect() as conn:
        rows = conn.execute(select(*columns).order_by(traceroutes.c.id)).all()
    return [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]


def test_traces_arrive_once_in_id_order_with_their_own_cursor(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    servers = seed_world(db, servers_count=3, now=clock.now())
    start = clock.now().replace(microsecond=0) - timedelta(hours=5)
    ids = seed_traceroutes(db, servers, start=start, count=130)
    exporter = Exporter(
        db, archive, stream=TRACEROUTES, batch_size=50, metrics=AnalyticsMetrics(), clock=clock
    )
    before = exporter.lag()  # the oldest trace not copied yet started 5 h (whole seconds) ago
    assert (before.rows, before.seconds) == (130, (clock.now() - start).total_seconds())

    assert exporter.run(max_batches=1) == 50
    with archive.session() as client:  # the first batch is exactly the 50 lowest ids
        assert [row[0] for row in _archived(client)] == ids[:50]
    with db.connect() as conn:
        assert q.get_export_cursor(conn, TRACEROUTES.name) == ids[49]
        assert q.get_export_cursor(conn, LOG_SCORES.name) is None  # streams move alone

    assert exporter.run() == 80
    assert exporter.run() == 0
    assert (exporter.lag().cursor, exporter.lag().rows) == (ids[-1], 0)
    with archive.session() as client:
        assert exported_ids(client, TRACEROUTES) == (130, 130, ids[-1])
        assert _archived(client) == _in_database(db)
    reg = exporter.metrics.registry
    assert reg.get_sample_value("analytics_export_rows_total", {"stream": "traceroutes"}) == 130


def test_one_pass_copies_every_stream_and_a_repeat_folds_by_id(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    servers = seed_world(db, servers_count=2, now=clock.now())
    _, last_score = seed_log_scores(db, servers, start=clock.now() - timedelta(hours=1), count=70)
    ids = seed_traceroutes(db, servers, start=clock.now() - timedelta(hours=1), count=40)
    exporter = StreamsExporter(db, archive, batch_size=16, clock=clock)

    assert exporter.run() == 70 + 40
    lags = exporter.lag()
    assert {name: (lag.cursor, lag.rows) for name, lag in lags.items()} == {
        "log_scores": (last_score, 0),
        "traceroutes": (ids[-1], 0),
    }
    with db.begin() as conn:  # as after a crash between the insert and the cursor update
        assert q.advance_export_cursor(conn, TRACEROUTES.name, old=ids[-1], new=ids[9])
    assert exporter.run() == 30  # traceroutes only: log_scores' cursor did not move back
    with archive.session() as client:
        folded, stored, highest = exported_ids(client, TRACEROUTES)
        assert (folded, stored >= 40, highest) == (40, True, ids[-1])
        assert _archived(client) == _in_database(db)
        assert exported_ids(client, LOG_SCORES) == (70, 70, last_score)
