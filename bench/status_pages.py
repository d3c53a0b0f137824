"""How long the status pages take with a busy server's history (target: a server page < 1 s).

Seeds one server with N monitors reporting once a minute for 24 h (plus the scorer's rows) in
a throw-away SQLite database, then times the query and the whole page through the ASGI app.
Prints a table; asserts nothing.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from starlette.testclient import TestClient

from ntpmon.api.pages import create_pages_app
from ntpmon.api.pages.svg import LinearScale, Series, time_chart
from ntpmon.common.clock import FixedClock, db_seconds
from ntpmon.db import admin
from ntpmon.db.common import insert_log_scores, log_score_values
from ntpmon.db.models import MonitorStatus
from ntpmon.db.pages import server_history
from ntpmon.db.tables import monitors
from ntpmon.testing.databases import temporary_sqlite_database

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REPEAT = 5


def seed(engine, agents: int) -> int:
    start = NOW - timedelta(hours=24)
    with engine.begin() as conn:
        server = admin.create_server(conn, ip="192.0.2.1", now=start)
        ids = [
            admin.create_monitor(
                conn,
                tls_name=f"m{i}.devel.mon.ntppool.dev",
                ip=f"127.0.{i}.1",
                now=start,
                status=MonitorStatus.ACTIVE,
            )
            for i in range(agents)
        ]
        scorer = conn.execute(
            insert(monitors).values(
                type="score", hostname="recentmedian", tls_name="recentmedian.scores.ntp.dev",
                status="active", config="", created_on=db_seconds(start),
            )
        ).inserted_primary_key[0]  # fmt: skip
        rows = []
        for minute in range(24 * 60):
            ts = start + timedelta(minutes=minute)
            for n, m in enumerate([*ids, scorer]):
                rows.append(
                    log_score_values(
                        server_id=server, monitor_id=m, ts=ts, score=10 + n, step=1,
                        offset=0.001 * n, rtt=1000, attributes=None,
                    )
                )  # fmt: skip
        insert_log_scores(conn, rows)
    return server


def timed(fn) -> float:
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    print(f"{'agents':>6} {'rows':>7} {'query ms':>9} {'svg ms':>7} {'page ms':>8} {'page KiB':>9}")
    for agents in (2, 7, 15):
        with tempfile.TemporaryDirectory() as tmp, temporary_sqlite_database(Path(tmp)) as db:
            server = seed(db, agents)
            since = NOW - timedelta(hours=24)

            def query(db=db, server=server, since=since):
                with db.connect() as conn:
                    return server_history(conn, server_id=server, since=since)

            points = query()
            one = Series("m", [(NOW - timedelta(minutes=i), 1.0) for i in range(1440)], "#000")
            svg_ms = timed(
                lambda series=[one] * agents, start=since: time_chart(
                    series, title="t", start=start, end=NOW, scale=LinearScale(-20, 20, 10)
                )
            )
            client = TestClient(create_pages_app(db, clock=FixedClock(NOW)))
            page = client.get(f"/servers/{server}")
            page_ms = timed(lambda client=client, server=server: client.get(f"/servers/{server}"))
            print(
                f"{agents:>6} {len(points):>7} {timed(query):>9.1f} {svg_ms:>7.1f} "
                f"{page_ms:>8.1f} {len(page.content) / 1024:>9.0f}"
            )


if __name__ == "__main__":
    main()
