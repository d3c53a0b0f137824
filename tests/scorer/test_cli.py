"""The ``monitor-scorer`` command line as a real process (TS-12, TS-14, TS-19, TS-23, TS-25)."""

from __future__ import annotations

import queue
import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from ntpmon.common.clock import FixedClock
from ntpmon.db.tables import monitors, scorer_status

from .conftest import EV, M3, M4, RM, S1, S3, World, build_world
from .processes import run_cli, start_server

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.fixture
def live(db: Engine) -> World:
    """The §16 world on the real clock: processes score with the wall clock."""
    return build_world(db, FixedClock(datetime.now(UTC)))


def test_ts12_run_without_scorers_fails(db: Engine) -> None:
    build_world(db, FixedClock(datetime.now(UTC)), scorers=())
    result = run_cli(db, "scorer", "run", "--metrics-port", "0")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("monitor-scorer: error: no scorers configured")


def test_ts14_run_processes_one_batch_per_scorer(live: World) -> None:
    live.setting({"batch_size": 2})
    ids = [live.log(S1, M3, 20.0 - i, 0.8, live.now - timedelta(minutes=5 - i)) for i in range(5)]
    for expected in (ids[1], ids[3], ids[4], ids[4]):
        result = run_cli(live.engine, "scorer", "run", "--metrics-port", "0")
        assert result.returncode == 0, result.stderr
        assert live.cursor(RM) == live.cursor(EV) == expected


def test_ts19_unscoreable_recent_row_exits_non_zero(db: Engine) -> None:
    world = build_world(db, FixedClock(datetime.now(UTC)), scorers=(RM,))
    world.assign(S3, M4, "paused")
    world.log(S1, M3, 19.0, 1.0, world.now - timedelta(minutes=11))
    world.log(S3, M4, 5.0, -1.0, world.now - timedelta(minutes=10))
    result = run_cli(db, "scorer", "run", "--metrics-port", "0")
    assert result.returncode == 1
    assert f'error: scorer "recentmedian": no recent scores found for {S3}' in result.stderr
    assert world.cursor(RM) == world.seed_id


def test_ts23_setup(db: Engine, clock: FixedClock) -> None:
    result = run_cli(db, "scorer", "setup")
    assert result.returncode == 1
    assert "log_scores is empty" in result.stderr
    with db.begin() as conn:
        assert conn.execute(select(monitors)).all() == []

    world = build_world(db, clock, scorers=())
    first = world.seed_id
    world.log(S1, M3, 1.0, 1.0, world.now)
    result = run_cli(db, "scorer", "setup")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created: every, recentmedian"
    with db.begin() as conn:
        scorers = conn.execute(
            select(
                monitors.c.id,
                monitors.c.hostname,
                monitors.c.status,
                monitors.c.tls_name,
                monitors.c.ip,
                monitors.c.config,
            )
            .where(monitors.c.type == "score")
            .order_by(monitors.c.hostname)
        ).all()
        cursors = dict(
            conn.execute(select(scorer_status.c.scorer_id, scorer_status.c.log_score_id)).all()
        )
    assert [tuple(s)[1:] for s in scorers] == [
        ("every", "active", "every.scores.ntp.dev", None, ""),
        ("recentmedian", "active", "recentmedian.scores.ntp.dev", None, ""),
    ]
    assert cursors == {s.id: first for s in scorers}

    again = run_cli(db, "scorer", "setup")
    assert again.returncode == 0
    assert again.stdout.strip() == "all scorers already configured"
    with db.begin() as conn:
        assert len(conn.execute(select(scorer_status)).all()) == 2


@pytest.mark.parametrize("args", [("db",), ("db", "status"), ("db", "--scorer-status")])
def test_ts25_db_status(live: World, args: tuple[str, ...]) -> None:
    result = run_cli(live.engine, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    pattern = r"^(\d+)\s{1,5}(\S+)\s+(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"
    parsed = {re.match(pattern, line).group(2): line for line in lines}  # type: ignore[union-attr]
    assert set(parsed) == {"recentmedian", "every"}
    assert parsed["recentmedian"].startswith(f"{RM:<5d} {'recentmedian':<20s} {live.seed_id:<10d} ")


def test_ts25_db_status_without_scorers(db: Engine, clock: FixedClock) -> None:
    build_world(db, clock, scorers=())
    result = run_cli(db, "db", "status")
    assert (result.returncode, result.stdout) == (0, "No scorers found\n")


def test_server_serves_metrics_and_stops_on_sigterm(live: World) -> None:
    ids = [live.log(S1, M3, 20.0, 0.8, live.now - timedelta(minutes=i)) for i in range(30)]
    process = start_server(live.engine, "--log-level", "info")
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stderr], daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            match = re.search(r"metrics listening.*port=(\d+)", line)
            port = int(match.group(1)) if match else None
        assert port is not None
        while live.cursor(RM) != ids[-1] and time.monotonic() < deadline:
            time.sleep(0.05)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'scorer_processed_count{scorer="recentmedian"} 30.0' in text
        assert "scorer_runs " in text
        assert "_created" not in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
