"""Two processes on one chDB directory, as in ``make run`` (the exporter and monitor-api's
pages): while this process has the archive open, ``monitor-scorer export run`` waits for it,
then copies both tables; afterwards this process opens the directory again and reads them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from ntpmon.analytics.archive import Archive
from ntpmon.common.clock import FixedClock
from ntpmon.db.clickhouse import LOG_SCORES, TRACEROUTES, exported_ids
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.logseed import seed_log_scores, seed_traceroutes, seed_world

PROGRAM = Path(sys.executable).with_name("monitor-scorer")
LOCKED = "Cannot lock file"
"""What chDB prints while another process has the directory open (the exporter then waits)."""


def test_the_exporter_waits_for_another_process_and_both_then_use_the_archive(
    tmp_path: Path, clock: FixedClock
) -> None:
    archive = Archive(f"chdb://{tmp_path / 'clickhouse'}")
    log = tmp_path / "export.log"
    with temporary_mysql_database() as engine:
        servers = seed_world(engine, servers_count=2, now=clock.now())
        _, last = seed_log_scores(engine, servers, start=clock.now() - timedelta(hours=1), count=90)
        traces = seed_traceroutes(engine, servers, start=clock.now() - timedelta(hours=1), count=9)
        env = {
            **os.environ,
            "DATABASE_DSN": engine.url.render_as_string(hide_password=False),
            "CLICKHOUSE_DSN": archive.dsn,
            "LOG_LEVEL": "warning",
        }
        with archive.session(), log.open("w") as out:  # the pages, mid-request
            process = subprocess.Popen(
                [str(PROGRAM), "export", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
            deadline = time.monotonic() + 60
            while LOCKED not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the exporter never met the lock"
                time.sleep(0.05)
        assert process.wait(timeout=60) == 0, log.read_text()
    output = log.read_text()
    assert f"log_scores: cursor {last}, behind 0 rows" in output
    assert f"traceroutes: cursor {traces[-1]}, behind 0 rows" in output
    with archive.session() as client:
        assert exported_ids(client, LOG_SCORES)[::2] == (90, last)
        assert exported_ids(client, TRACEROUTES)[::2] == (9, traces[-1])
