"""Real ``monitor-scorer`` processes on one MariaDB database (spec/scorer.md §8, §9.2).

Two processes started together never score a row twice and end where one process ends; a
process SIGKILLed in the middle of a backlog and restarted loses and repeats nothing.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from ntpmon.common.clock import FixedClock
from ntpmon.testing.databases import temporary_mysql_database

from .conftest import EV, RM, World, build_world
from .processes import alternating_backlog, run_cli, snapshot, start_server

pytestmark = [pytest.mark.db, pytest.mark.e2e]


def system_clock_now() -> FixedClock:
    """Processes use the real clock; the data must be recent for the 3-hour rule."""
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def mariadb() -> Iterator[Engine]:
    with temporary_mysql_database("ntpmon_scorer_proc") as engine:
        yield engine


@pytest.fixture
def reference() -> Iterator[Engine]:
    with temporary_mysql_database("ntpmon_scorer_ref") as engine:
        yield engine


def prepared(
    engine: Engine, clock: FixedClock, per_server: int, batch: int
) -> tuple[World, list[int]]:
    world = build_world(engine, clock)
    world.setting({"batch_size": batch})
    return world, alternating_backlog(world, per_server)


def single_process_result(engine: Engine, clock: FixedClock, per_server: int, batch: int) -> dict:
    world, _ = prepared(engine, clock, per_server, batch)
    runner = world.runner()
    while runner.run():
        pass
    return snapshot(engine)


def assert_each_input_once(world: World, ids: list[int]) -> None:
    rm_from = [json.loads(r.attributes or "{}")["from_ls_id"] for r in world.outputs(RM)]
    assert sorted(rm_from) == ids
    ev_keys = [(r.server_id, r.ts) for r in world.outputs(EV)]
    assert len(ev_keys) == len(set(ev_keys)) == len(ids)


def test_two_processes_started_together(mariadb: Engine, reference: Engine) -> None:
    clock = system_clock_now()
    world, ids = prepared(mariadb, clock, per_server=20, batch=10)
    failures: list[str] = []

    def loop() -> None:
        for _ in range(40):
            result = run_cli(mariadb, "scorer", "run", "--metrics-port", "0")
            if result.returncode != 0:
                failures.append(result.stderr)
                return
            if world.cursor(RM) == world.cursor(EV) == ids[-1]:
                return

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert world.cursor(RM) == world.cursor(EV) == ids[-1]
    assert_each_input_once(world, ids)
    assert snapshot(mariadb) == single_process_result(reference, clock, 20, 10)


def wait_for(condition, timeout: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_sigkill_mid_backlog_and_restart(mariadb: Engine, reference: Engine) -> None:
    clock = system_clock_now()
    world, ids = prepared(mariadb, clock, per_server=80, batch=3)
    first = world.seed_id
    process = start_server(mariadb)
    try:
        assert wait_for(lambda: world.cursor(EV) > first + 30 or process.poll() is not None)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert world.cursor(RM) < ids[-1]  # killed with work left

    restarted = start_server(mariadb)
    try:
        assert wait_for(lambda: world.cursor(RM) == world.cursor(EV) == ids[-1])
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0
    finally:
        if restarted.poll() is None:
            restarted.kill()
    assert_each_input_once(world, ids)
    assert snapshot(mariadb) == single_process_result(reference, clock, 80, 3)
