"""``monitor-scorer export run`` killed with SIGKILL between a ClickHouse insert and its cursor
update: the next run copies that batch again and every row ends up in ClickHouse exactly once.

The test holds a row lock on the cursor (MariaDB), so the exporter is stopped exactly there:
its first batch is in ClickHouse and its UPDATE waits; then it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from ntpmon.analytics.archive import Archive
from ntpmon.common.clock import FixedClock
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import LOG_SCORES, STREAMS, exported_ids, server_history
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.logseed import seed_log_scores, seed_world

PROGRAM = Path(sys.executable).with_name("monitor-scorer")
ROWS, BATCH = 3000, 1000


def _export(engine: Engine, dsn: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_DSN": engine.url.render_as_string(hide_password=False),
        "CLICKHOUSE_DSN": dsn,
        "LOG_LEVEL": "warning",
        "TZ": "Asia/Tokyo",  # naive timestamps must still land as UTC
    }
    return subprocess.Popen(
        [str(PROGRAM), "export", "run", "--batch-size", str(BATCH)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_blocked_update(engine: Engine, process: subprocess.Popen[str]) -> None:
    query = text(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE DB = DATABASE() AND INFO LIKE 'UPDATE export_cursors%'"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the exporter never reached its cursor update")


def test_kill_9_between_insert_and_cursor_update_loses_and_duplicates_nothing(
    tmp_path: Path, clock: FixedClock
) -> None:
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with temporary_mysql_database() as engine:
        servers = seed_world(engine, servers_count=5, now=clock.now())
        first, last = seed_log_scores(
            engine, servers, start=clock.now() - timedelta(hours=3), count=ROWS
        )
        with engine.begin() as conn:  # every cursor row exists: the lock below covers them all
            for stream in STREAMS:
                q.create_export_cursor(conn, stream.name)
        with engine.connect() as lock:
            lock.execute(text("SELECT last_id FROM export_cursors FOR UPDATE"))
            process = _export(engine, dsn)
            try:
                _wait_for_blocked_update(engine, process)
                process.send_signal(signal.SIGKILL)
                assert process.wait(timeout=30) == -signal.SIGKILL
            finally:
                if process.poll() is None:
                    process.kill()
                process.communicate()
            lock.rollback()

        with engine.connect() as conn:
            assert q.get_export_cursor(conn, LOG_SCORES.name) == 0  # the batch was not committed
        archive = Archive(dsn)
        with archive.session() as client:  # ... but it is in ClickHouse: killed mid-batch
            assert exported_ids(client, LOG_SCORES) == (BATCH, BATCH, first + BATCH - 1)

        rerun = _export(engine, dsn)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        assert f"exported {ROWS} rows\nlog_scores: cursor {last}, behind 0 rows" in out

        with archive.session() as client:
            folded, stored, highest = exported_ids(client, LOG_SCORES)
            one_server = server_history(
                client,
                server_id=servers[0],
                since=clock.now() - timedelta(days=1),
                until=clock.now(),
            )
        with engine.connect() as conn:
            expected = (
                conn.execute(
                    text("SELECT ts FROM log_scores WHERE server_id = :s ORDER BY id"),
                    {"s": servers[0]},
                )
                .scalars()
                .all()
            )
    assert (folded, highest) == (ROWS, last)
    assert stored >= ROWS  # the first batch may be stored twice until a merge folds it
    assert [p.ts for p in one_server] == expected
