"""The scorer's row cache: bounded, oldest out first, and only ever a shortcut for reads."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from ntpmon.common.clock import FixedClock
from ntpmon.db import scorer as q
from ntpmon.db.models import LogScore
from ntpmon.scorer.rowcache import RowCache

from .conftest import build_world

T0 = datetime(2026, 11, 26, 12, 0, 0)


def row(row_id: int, score: float = 1.0) -> LogScore:
    return LogScore(row_id, 10, 3001, T0 + timedelta(seconds=row_id), score, 1.0, None, None, None)


@pytest.mark.parametrize(
    ("capacity", "batches", "kept"),
    [
        (0, [[1, 2, 3]], []),
        (3, [[1, 2, 3]], [1, 2, 3]),
        (3, [[1, 2, 3], [4]], [2, 3, 4]),
        (3, [[1, 2], [2, 1], [5, 6]], [2, 5, 6]),  # a re-seen row keeps its first place
        (4, [[9, 8, 7], [1, 2, 3]], [7, 1, 2, 3]),
        (2, [[1, 2, 3, 4, 5]], [4, 5]),
    ],
)
def test_remember_keeps_the_newest_entries_up_to_capacity(
    capacity: int, batches: list[list[int]], kept: list[int]
) -> None:
    cache = RowCache(capacity)
    for ids in batches:
        cache.remember(row(i) for i in ids)
    assert list(cache) == kept
    assert len(cache) == len(kept)
    assert all(cache[i].id == i for i in kept)


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RowCache(-1)


@pytest.mark.db
def test_rows_by_id_come_from_known_and_the_rest_from_the_database(
    db: Engine, clock: FixedClock
) -> None:
    world = build_world(db, clock)
    world.add_monitor(10)
    ids = [world.log(3001, 10, float(n), 1.0, world.now - timedelta(minutes=n)) for n in range(6)]
    marker = LogScore(ids[0], 10, 3001, T0, 99.0, 1.0, None, None, None)
    with world.engine.begin() as conn:
        stored = {r.id: r for r in q.get_log_scores_by_id(conn, ids)}
        mixed = {r.id: r for r in q.get_log_scores_by_id(conn, [*ids, ids[0]], {ids[0]: marker})}
        assert q.get_log_scores_by_id(conn, [], {ids[0]: marker}) == []
    assert sorted(stored) == sorted(ids)
    assert mixed[ids[0]] is marker  # taken from ``known``, not read
    assert all(mixed[i] == stored[i] for i in ids[1:])


def test_batch_high_follows_batch_rows_only() -> None:
    cache = RowCache(10)
    cache.remember([row(50)])  # candidate rows say nothing about the next batch
    assert cache.batch_high == 0
    cache.remember([row(3), row(7)], batch=True)
    assert cache.batch_high == 7
    cache.remember([row(5)], batch=True)
    assert cache.batch_high == 7
    assert RowCache(0).batch_high == 0


@pytest.mark.db
@pytest.mark.parametrize("capacity", [0, 3, 1000])
def test_fetch_batch_reads_the_same_rows_through_the_cache(
    db: Engine, clock: FixedClock, capacity: int
) -> None:
    """Across an id gap wider than Q21's window too (Q22), and with a cache too small to
    hold the rows (then the missing ones are read by id)."""
    from sqlalchemy import insert

    from ntpmon.db.common import log_score_values
    from ntpmon.db.tables import log_scores
    from ntpmon.scorer.runner import fetch_batch

    world = build_world(db, clock)
    world.add_monitor(10)
    start = world.seed_id
    with world.engine.begin() as conn:
        for offset in (1, 2, 4, 15_000, 15_001, 15_003):
            values = log_score_values(
                server_id=3001,
                monitor_id=10,
                ts=world.now - timedelta(seconds=offset % 100),
                score=float(offset),
                step=1.0,
                offset=None,
                rtt=None,
                attributes=None,
            )
            conn.execute(insert(log_scores).values(id=start + offset, **values))
    cache = RowCache(capacity)
    with world.engine.begin() as conn:
        agents = q.get_agent_monitor_ids(conn)
        for cursor in (start, start + 4, start + 15_001):
            plain = fetch_batch(conn, cursor, 2, agents)
            first = fetch_batch(conn, cursor, 2, agents, cache)
            cache.remember(first, batch=True)
            again = fetch_batch(conn, cursor, 2, agents, cache)  # as the next scorer would
            assert plain == first == again
            assert plain and all(r.id > cursor for r in plain)
