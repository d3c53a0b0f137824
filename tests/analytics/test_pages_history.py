"""A server page whose window reaches past the database's retention reads ClickHouse for it."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from ntpmon.analytics.archive import Archive
from ntpmon.analytics.exporter import Exporter
from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.analytics.retention import Pruner
from ntpmon.api.pages.app import MAX_HOURS_WITH_ARCHIVE, create_pages_app
from ntpmon.common.clock import FixedClock
from ntpmon.db.tables import log_scores
from ntpmon.testing.logseed import seed_log_scores, seed_world, set_scorer_cursor


def _measurements(page: str) -> int:
    found = re.search(r"(\d+) measurements in the last (\d+) h", page)
    assert found, page[:500]
    return int(found.group(1))


def test_twenty_days_of_history_after_retention_kept_fourteen(
    db: Engine, archive: Archive, clock: FixedClock
) -> None:
    servers = seed_world(db, servers_count=2, now=clock.now())
    start = clock.now().replace(microsecond=0) - timedelta(days=20, minutes=-1)
    _, last = seed_log_scores(db, servers, start=start, count=240, spacing=timedelta(hours=2))
    set_scorer_cursor(db, last)
    exporter = Exporter(db, archive, batch_size=100, metrics=AnalyticsMetrics(), clock=clock)
    exporter.run()
    seed_log_scores(db, servers, start=clock.now() - timedelta(minutes=30), count=4)  # not exported
    assert Pruner(db, clock=clock).run().deleted == 72

    with db.connect() as conn:
        kept = conn.execute(
            select(func.count()).where(log_scores.c.server_id == servers[0])
        ).scalar_one()
    assert kept == (240 - 72) // 2 + 2

    url = f"/servers/{servers[0]}?hours=480"
    with_archive = TestClient(create_pages_app(db, clock=clock, archive=archive))
    page = with_archive.get(url)
    assert page.status_code == 200
    assert _measurements(page.text) == 120 + 2  # 20 days of the server's rows + 2 new ones

    short = with_archive.get(f"/servers/{servers[0]}?hours=24")
    assert _measurements(short.text) == 6 + 2  # within retention: the database alone

    too_long = with_archive.get(f"/servers/{servers[0]}?hours={MAX_HOURS_WITH_ARCHIVE + 1}")
    assert too_long.status_code == 400

    database_only = TestClient(create_pages_app(db, clock=clock)).get(url)
    assert database_only.status_code == 400 and "between 1 and 336" in database_only.text
