"""The batch-loaded candidate sets equal query Q23 row by row (spec/scorer.md §6.1).

The runner never runs Q23 per row; it loads each tier once per batch and evaluates in memory.
These tests run the literal Q23 for every input row and tier on random data full of equal
timestamps, paused/unassigned monitors, scorer rows and NULL-monitor rows.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, select

from ntpmon.common.clock import FixedClock
from ntpmon.db import scorer as q
from ntpmon.db.models import LogScore
from ntpmon.db.tables import server_scores
from ntpmon.scorer.recentmedian import TIERS, ServerWindow, Tier
from ntpmon.scorer.registry import RecentMedianAlgorithm

from .conftest import RM, World, build_world

pytestmark = pytest.mark.db
MONITORS = range(10, 18)
SERVERS = (3001, 3002, 3003)


def random_world(db: Engine, clock: FixedClock, seed: int) -> tuple[World, list[int]]:
    rng = random.Random(seed)
    world = build_world(db, clock, scorers=(RM,))
    for monitor in MONITORS:
        world.add_monitor(monitor)
    for server in SERVERS:
        for monitor in MONITORS:
            status = rng.choice(["candidate", "testing", "active", "active", "paused", None])
            if status is not None:
                world.assign(server, monitor, status)
    start = world.now - timedelta(hours=3)
    ids = []
    for _ in range(260):
        ts = start + timedelta(seconds=rng.randrange(0, 3 * 3600, 20))  # many equal seconds
        monitor = rng.choice([*MONITORS, RM, None])
        row_id = world.log(
            rng.choice(SERVERS),
            monitor,
            rng.uniform(-20, 20),
            1.0,
            ts,
            rtt=rng.choice([None, 1000, 2000]),
        )
        if monitor in MONITORS:
            ids.append(row_id)
    return world, ids


def q23(conn: Connection, row: LogScore, tier: Tier) -> list[LogScore]:
    """The literal Q23 for one input row and tier: the reference the batch loads must equal."""
    return q.get_scorer_recent_scores(
        conn, server_id=row.server_id, ts=row.ts, statuses=tier.statuses, lookback_s=tier.lookback_s
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_window_equals_q23_per_row_and_tier(db: Engine, clock: FixedClock, seed: int) -> None:
    world, ids = random_world(db, clock, seed)
    rng = random.Random(seed * 7)
    with world.engine.begin() as conn:
        rows = [r for r in q.get_scorer_log_scores(conn, log_score_id=world.seed_id, limit=1000)]
        assert {r.id for r in rows} == set(ids)
        batch = rng.sample(rows, 60)
        checked = 0
        for tier in TIERS:
            for server in SERVERS:
                mine = [r for r in batch if r.server_id == server]
                if not mine:
                    continue
                loaded = q.load_recent_window(
                    conn,
                    server_ids=[server],
                    statuses=tier.statuses,
                    first_ts=min(r.ts for r in mine),
                    last_ts=max(r.ts for r in mine),
                    lookback_s=tier.lookback_s,
                    agents=q.get_agent_monitor_ids(conn),
                )
                window = ServerWindow(loaded)
                for row in mine:
                    expected = q.get_scorer_recent_scores(
                        conn,
                        server_id=server,
                        ts=row.ts,
                        statuses=tier.statuses,
                        lookback_s=tier.lookback_s,
                    )
                    assert window.recent(row.ts, tier.lookback_s) == expected
                    checked += len(expected)
        assert checked > 100


@pytest.mark.parametrize("seed", [4, 5])
def test_resolve_candidates_equals_q23_fallbacks(db: Engine, clock: FixedClock, seed: int) -> None:
    world, _ = random_world(db, clock, seed)
    with world.engine.begin() as conn:
        rows = q.get_scorer_log_scores(conn, log_score_id=world.seed_id, limit=1000)

        resolved = RecentMedianAlgorithm().prepare(conn, rows, q.get_agent_monitor_ids(conn))
        empty = 0
        for row in rows:
            expected: list = []
            for tier in TIERS:
                expected = q23(conn, row, tier)
                if expected:
                    break
            empty += not expected
            assert resolved.get(row.id, []) == expected
        assert empty < len(rows)


def test_near_window_then_far_search_for_missing_monitors(db: Engine, clock: FixedClock) -> None:
    world = build_world(db, clock, scorers=(RM,))
    for monitor, status in ((10, "active"), (11, "active"), (12, "paused")):
        world.add_monitor(monitor)
        world.assign(3001, monitor, status)
    first = world.now - timedelta(minutes=1)
    a_near = world.log(3001, 10, 1.0, 1.0, first - timedelta(minutes=5))
    world.log(3001, 10, 2.0, 1.0, first - timedelta(minutes=15))  # hidden by a_near
    b1 = world.log(3001, 11, 3.0, 1.0, first - timedelta(minutes=15))
    b2 = world.log(3001, 11, 4.0, 1.0, first - timedelta(minutes=15))  # same second
    world.log(3001, 11, 5.0, 1.0, first - timedelta(minutes=25))  # beyond 20 min
    world.log(3001, 12, 6.0, 1.0, first - timedelta(minutes=2))  # paused assignment
    world.log(3001, RM, 7.0, 1.0, first - timedelta(minutes=3))  # a scorer's row
    inside = world.log(3001, 11, 8.0, 1.0, first)
    with world.engine.begin() as conn:
        rows = q.load_recent_window(
            conn,
            server_ids=[3001],
            statuses=("active",),
            first_ts=first,
            last_ts=first,
            lookback_s=1200,
            agents=q.get_agent_monitor_ids(conn),
        )
    assert sorted(r.id for r in rows) == sorted([a_near, b1, b2, inside])


@pytest.mark.parametrize("seed", [6, 7])
def test_single_row_windows_equal_q23(db: Engine, clock: FixedClock, seed: int) -> None:
    """One window per input row: rows ~16 min apart per pair, so the far search runs often."""
    world, _ = random_world(db, clock, seed)
    with world.engine.begin() as conn:
        rows = q.get_scorer_log_scores(conn, log_score_id=world.seed_id, limit=1000)
        agents = q.get_agent_monitor_ids(conn)
        checked = 0
        for row in rows[::3]:
            for tier in TIERS:
                loaded = q.load_recent_window(
                    conn,
                    server_ids=[row.server_id],
                    statuses=tier.statuses,
                    first_ts=row.ts,
                    last_ts=row.ts,
                    lookback_s=tier.lookback_s,
                    agents=agents,
                )
                expected = q23(conn, row, tier)
                assert ServerWindow(loaded).recent(row.ts, tier.lookback_s) == expected
                checked += len(expected)
        assert checked > 50


T0 = datetime(2026, 11, 26, 12, 0, 0)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([], {}),
        ([(1, 7, 10, 0)], {(7, 10): [1]}),
        ([(1, 7, 10, 0), (2, 7, 10, 5)], {(7, 10): [2]}),
        ([(2, 7, 10, 5), (1, 7, 10, 0)], {(7, 10): [2]}),
        ([(1, 7, 10, 5), (2, 7, 10, 5), (3, 7, 10, 4)], {(7, 10): [1, 2]}),
        ([(1, 7, 10, 3), (2, 7, 11, 1), (3, 8, 10, 2)], {(7, 10): [1], (7, 11): [2], (8, 10): [3]}),
    ],
)
def test_latest_keys_keeps_every_row_at_the_greatest_ts(
    keys: list[tuple[int, int, int, int]], expected: dict[tuple[int, int], list[int]]
) -> None:
    rows = (q.RowKey(i, s, m, T0 + timedelta(seconds=t)) for i, s, m, t in keys)
    assert q.latest_keys(rows) == expected


@pytest.mark.parametrize("limit", [None, 40, 4])
def test_packed_row_keys_equal_one_row_per_key(
    db: Engine, clock: FixedClock, limit: int | None
) -> None:
    """Keys read packed per server equal keys read row by row, also when the packed text is
    cut short by ``group_concat_max_len`` (MariaDB; SQLite has no such limit)."""
    world, _ = random_world(db, clock, 8)
    with world.engine.begin() as conn:
        if limit is not None and db.dialect.name != "sqlite":
            conn.exec_driver_sql(f"SET SESSION group_concat_max_len = {limit}")
        agents = q.get_agent_monitor_ids(conn)
        statuses = ("active", "testing", "candidate")
        pairs = q.get_assignment_pairs(conn, server_ids=SERVERS, statuses=statuses, agents=agents)
        ss = server_scores.c
        assert len(pairs) > 10
        assert pairs == {
            (r.server_id, r.monitor_id)
            for r in conn.execute(
                select(ss.server_id, ss.monitor_id).where(
                    ss.status.in_(statuses), ss.monitor_id.in_(agents)
                )
            )
        }
        lo, hi = world.now - timedelta(hours=4), world.now
        for upper in ("le", "lt"):
            packed = q._row_keys(conn, SERVERS, pairs, lo=lo, hi=hi, upper=upper)
            plain = q._row_keys_plain(conn, SERVERS, pairs, lo=lo, hi=hi, upper=upper)
            assert len(plain) > 50
            assert sorted(packed, key=lambda k: k.id) == sorted(plain, key=lambda k: k.id)
        if limit is not None and db.dialect.name != "sqlite":
            conn.exec_driver_sql("SET SESSION group_concat_max_len = 1048576")
