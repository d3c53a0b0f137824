"""The same realistic backlog scored with batch size 50 and 5,000 writes identical rows, and
so does scoring it with a row cache that is empty, tiny (constantly evicting) or large."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, update

from ntpmon.common.clock import FixedClock
from ntpmon.db.tables import log_scores, server_scores, servers
from ntpmon.testing.scorer_backlog import create_pool, insert_rows, measurements

from .conftest import EV, RM, S1, S2, World, build_world
from .processes import snapshot

pytestmark = pytest.mark.db


def reset_scorers(world: World) -> None:
    """Back to the state before any scoring (the inputs stay as they are)."""
    with world.engine.begin() as conn:
        conn.execute(delete(log_scores).where(log_scores.c.monitor_id.in_([RM, EV])))
        conn.execute(delete(server_scores).where(server_scores.c.monitor_id.in_([RM, EV])))
        conn.execute(update(servers).values(score_ts=None, score_raw=0.0))
    world.assign(S1, RM, "candidate", 0)
    world.assign(S2, EV, "candidate", 0)
    world.set_cursor(RM, world.seed_id)
    world.set_cursor(EV, world.seed_id)


def test_batch_size_50_and_5000_give_identical_rows(db: Engine, clock: FixedClock) -> None:
    world = build_world(db, clock)
    rng = random.Random(50)
    pool = create_pool(
        db, monitors_count=12, servers_count=30, per_server=6, now=world.now, rng=rng
    )
    inserted = insert_rows(
        db,
        measurements(
            pool,
            start=world.now - timedelta(minutes=140),
            end=world.now,
            interval=timedelta(minutes=9),
            rng=rng,
        ),
    )
    assert inserted > 2500
    results = {}
    for size, capacity in ((50, 120_000), (5000, 120_000), (50, 0), (50, 150), (5000, 0)):
        reset_scorers(world)
        world.setting({"batch_size": size})
        runner = world.runner(row_cache_capacity=capacity)
        runs = 0
        while runner.run():
            runs += 1
        results[size, capacity] = (snapshot(db), runs)
    (small, small_runs), (large, large_runs) = results[50, 120_000], results[5000, 120_000]
    assert (small_runs, large_runs) == (-(-inserted // 50), 1)
    assert small == large
    for key in ((50, 0), (50, 150), (5000, 0)):
        assert results[key][0] == small, key
    written = len(small["outputs"])  # type: ignore[arg-type]
    assert inserted < written < 2 * inserted  # both scorers wrote, the dedup suppressed some
