"""End to end on MariaDB: responders → agents → monitor-api → scorer → selector.

``scripts/run_stack.py`` starts every part as a separate process talking over real sockets
(gRPC with mutual TLS, HTTPS, UDP NTP on loopback) and is stopped the way a user stops it,
with SIGINT (Ctrl-C). Afterwards every process must have exited cleanly and the database must
show that each server's score moved in the direction the scoring rules give its behaviour,
that the selector promoted monitors, that every result an agent submitted is in
``log_scores``, and that the exporter copied log_scores into the run's chDB archive.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ntpmon.analytics.archive import Archive
from ntpmon.db import analytics as export_queries
from ntpmon.db import pages as queries
from ntpmon.db.clickhouse import LOG_SCORES, exported_ids
from ntpmon.db.tables import log_scores
from ntpmon.devtools.runstack import plan
from ntpmon.devtools.runstack.summary import moved_as_expected, submitted_results
from ntpmon.testing.databases import temporary_mysql_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 40
STARTED = "scorer and selector running"


def run_until_ctrl_c(dsn: str, run_dir: Path) -> str:
    """Start the stack, let it run ``RUN_SECONDS`` once complete, then SIGINT; its output."""
    log = run_dir.parent / "run_stack.out"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "run_stack.py"),
        "--database-dsn", dsn,
        "--run-dir", str(run_dir),
        "--base-port", "0",
        "--ntp-port", "0",
        "--start-as", "candidate",
        "--refresh", "10",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 240
            while STARTED not in log.read_text():
                assert process.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(1)
            time.sleep(RUN_SECONDS)
            process.send_signal(signal.SIGINT)
            assert process.wait(120) == 0, log.read_text()[-4000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return log.read_text()


def test_stack_end_to_end_on_mariadb(tmp_path: Path) -> None:
    """One run (a single test: xdist must not start the stack twice), five checks."""
    run_dir = tmp_path / "stack"
    with temporary_mysql_database(prefix="ntpmon_stack") as engine:
        output = run_until_ctrl_c(engine.url.render_as_string(hide_password=False), run_dir)
        check_clean_stop(output)
        check_scores_moved(engine)
        check_selector_promoted(engine)
        check_no_submitted_result_missing(engine, run_dir)
        check_exported(engine, run_dir)


def check_clean_stop(output: str) -> None:
    """Every child got SIGTERM from the orchestrator and exited with status 0."""
    stopped = re.search(r"^stopped: (.*)$", output, re.M)
    assert stopped, output[-4000:]
    statuses = dict(re.findall(r"(\S+) \(exit (-?\d+)\)", stopped.group(1)))
    expected = {"monitor-api", "exporter", "agent-1", "agent-2", "monitor-scorer", "selector"}
    assert set(statuses) == expected
    assert set(statuses.values()) == {"0"}, statuses


def check_scores_moved(engine: Engine) -> None:
    with engine.connect() as conn:
        servers = {s.ip: s for s in queries.list_server_overviews(conn)}
        counts = queries.measurement_counts(conn)
    for spec in plan.RESPONDERS:
        server = servers[spec.address]
        measured = sum(n for (sid, _), n in counts.items() if sid == server.id)
        assert measured >= 2, f"{spec.name}: measured by both agents"
        assert server.score_ts is not None, f"{spec.name}: scored by the scorer"
        assert moved_as_expected(spec.direction, server.score_raw), (
            f"{spec.name}: score {server.score_raw} should go {spec.direction}"
        )


def check_selector_promoted(engine: Engine) -> None:
    """The agents start as candidates; the selector's bootstrap makes them testing.

    Servers whose monitors all look healthy stay candidates with only two monitors (the
    selector's emergency rule needs 7); the failing servers are bootstrapped.
    """
    with engine.connect() as conn:
        servers = {s.ip: s for s in queries.list_server_overviews(conn)}
    for spec in plan.RESPONDERS:
        if spec.direction is plan.Direction.DOWN:
            counts = servers[spec.address].monitor_counts
            assert counts.get("testing", 0) >= 1, f"{spec.name}: {counts}"


def check_no_submitted_result_missing(engine: Engine, run_dir: Path) -> None:
    with engine.connect() as conn:
        monitors = {m.ip: m.id for m in queries.list_monitor_overviews(conn)}
        counts = queries.measurement_counts(conn)
    for index, address in enumerate(plan.AGENT_ADDRESSES):
        log = (run_dir / "logs" / f"agent-{index + 1}.log").read_text()
        submitted = submitted_results(log)
        stored = sum(n for (_, mid), n in counts.items() if mid == monitors[address])
        assert submitted >= len(plan.RESPONDERS), f"agent-{index + 1} submitted {submitted}"
        assert stored >= submitted, f"agent-{index + 1}: {submitted} submitted, {stored} stored"


def check_exported(engine: Engine, run_dir: Path) -> None:
    """The exporter ran beside the pages on one chDB directory: its log_scores cursor moved
    and the archive holds every row up to it, once."""
    with engine.connect() as conn:
        cursor = export_queries.get_export_cursor(conn, LOG_SCORES.name)
        copied = conn.execute(
            select(func.count()).select_from(log_scores).where(log_scores.c.id <= (cursor or 0))
        ).scalar_one()
    assert cursor and copied, f"log_scores cursor {cursor}"
    with Archive(plan.clickhouse_dsn(run_dir)).session() as client:
        folded, _, highest = exported_ids(client, LOG_SCORES)
    assert (folded, highest) == (copied, cursor)
