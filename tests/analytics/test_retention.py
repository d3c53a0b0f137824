"""Retention on MariaDB and SQLite: old rows go in key ranges, unscored or unexported ones never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.analytics.retention import Pruner, parse_age
from ntpmon.common.clock import FixedClock
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import LOG_SCORES
from ntpmon.db.tables import log_scores
from ntpmon.testing.logseed import seed_log_scores, seed_world, set_scorer_cursor

DAY = timedelta(days=1)


def _ids(db: Engine) -> list[int]:
    with db.connect() as conn:
        return list(conn.execute(select(log_scores.c.id).order_by(log_scores.c.id)).scalars())


def _seed(db: Engine, clock: FixedClock) -> tuple[int, int]:
    """20 days of rows, one every 2 hours: 240 rows, the first 6 days' 72 older than 14 days."""
    servers = seed_world(db, servers_count=2, now=clock.now())
    start = clock.now().replace(microsecond=0) - 20 * DAY + timedelta(minutes=1)
    return seed_log_scores(db, servers, start=start, count=240, spacing=timedelta(hours=2))


def _pruner(db: Engine, clock: FixedClock, **kw: object) -> Pruner:
    kw.setdefault("batch_size", 10)
    return Pruner(db, metrics=AnalyticsMetrics(), clock=clock, **kw)  # type: ignore[arg-type]


def test_old_scored_rows_go_in_small_batches_and_young_ones_stay(
    db: Engine, clock: FixedClock
) -> None:
    first, last = _seed(db, clock)
    set_scorer_cursor(db, last)
    pruner = _pruner(db, clock)
    result = pruner.run()
    assert (result.deleted, result.statements, result.reason) == (72, 8, "done")
    assert _ids(db) == list(range(first + 72, last + 1))
    with db.connect() as conn:
        oldest = q.oldest_log_score(conn)
    assert oldest is not None and clock.now().replace(tzinfo=None) - oldest[1] < 14 * DAY
    reg = pruner.metrics.registry
    assert reg.get_sample_value("retention_deleted_rows_total") == 72
    assert reg.get_sample_value("retention_delete_statements_total") == 8
    assert reg.get_sample_value("retention_delete_duration_seconds_count") == 8
    assert reg.get_sample_value("retention_safe_bound_id") == last
    assert pruner.run().deleted == 0  # nothing left to do


def test_rows_the_scorer_has_not_passed_stay_and_so_does_its_cursor_row(
    db: Engine, clock: FixedClock
) -> None:
    first, last = _seed(db, clock)
    cursor = first + 30
    set_scorer_cursor(db, cursor)
    result = _pruner(db, clock).run()
    assert (result.deleted, result.bound) == (30, cursor)
    assert _ids(db) == list(range(cursor, last + 1))  # the cursor's row is a foreign key target


def test_rows_the_exporter_has_not_copied_stay(db: Engine, clock: FixedClock) -> None:
    first, last = _seed(db, clock)
    set_scorer_cursor(db, last)
    with db.begin() as conn:
        q.create_export_cursor(conn, LOG_SCORES.name, first + 19)
    assert _pruner(db, clock).run().deleted == 20
    assert _ids(db)[0] == first + 20
    with db.begin() as conn:
        q.advance_export_cursor(conn, LOG_SCORES.name, old=first + 19, new=last)
    assert _pruner(db, clock).run().deleted == 52


def test_without_a_scorer_nothing_is_deleted(db: Engine, clock: FixedClock) -> None:
    _seed(db, clock)
    result = _pruner(db, clock).run()
    assert (result.deleted, result.reason, len(_ids(db))) == (0, "no scorers", 240)


def test_dry_run_counts_and_deletes_nothing(db: Engine, clock: FixedClock) -> None:
    _, last = _seed(db, clock)
    set_scorer_cursor(db, last)
    pruner = _pruner(db, clock, max_age=parse_age("10d"))
    result = pruner.run(dry_run=True)
    assert (result.deleted, result.statements, len(_ids(db))) == (120, 0, 240)
    assert pruner.metrics.registry.get_sample_value("retention_eligible_rows") == 120


def test_a_young_row_stops_the_prefix(db: Engine, clock: FixedClock) -> None:
    """Only a contiguous run of the oldest ids goes: the pages read below it from ClickHouse."""
    first, last = _seed(db, clock)
    set_scorer_cursor(db, last)
    with db.begin() as conn:  # an old id with a young ts (e.g. a scorer row for a late input)
        conn.execute(
            log_scores.update()
            .where(log_scores.c.id == first + 5)
            .values(ts=clock.now().replace(tzinfo=None, microsecond=0))
        )
    assert _pruner(db, clock).run().deleted == 5
    with db.connect() as conn:
        assert conn.execute(select(func.min(log_scores.c.id))).scalar_one() == first + 5


@pytest.mark.parametrize(("text", "seconds"), [("14d", 14 * 86400), ("36h", 129600), ("90m", 5400)])
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text).total_seconds() == seconds


def test_an_age_below_a_day_or_nonsense_is_refused(db: Engine) -> None:
    with pytest.raises(ValueError, match="at least 1 day"):
        Pruner(db, max_age=parse_age("23h"))
    with pytest.raises(ValueError, match="14d"):
        parse_age("two weeks")
