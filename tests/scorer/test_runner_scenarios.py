"""Integration scenarios TS-9 … TS-21, TS-24 of spec/scorer.md §16 on MariaDB and SQLite."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ntpmon.scorer.errors import BatchError, NoScorersError

from .conftest import EV, M3, M4, RM, S1, S2, World

pytestmark = pytest.mark.db


def attrs(row_attributes: str | None) -> dict[str, object]:
    return json.loads(row_attributes or "null") or {}


def test_ts9_backlog_and_ts10_nothing_to_do(world: World) -> None:
    ids = [world.log(S1, M3, 20.0, 0.8, world.now - timedelta(minutes=i)) for i in range(100)]
    runner = world.runner()
    assert runner.run() == 200

    rm = world.server_score(S1, RM)
    assert rm is not None
    assert (rm.status, rm.score_raw, rm.score_ts) == (
        "active",
        20.0,
        world.now - timedelta(minutes=99),
    )
    ev = world.server_score(S1, EV)
    assert ev is not None
    assert ev.status == "active"
    assert ev.score_raw == pytest.approx(15.875668886372987, abs=1e-9)
    assert ev.score_ts == world.now - timedelta(minutes=99)

    rm_rows, ev_rows = world.outputs(RM), world.outputs(EV)
    assert len(rm_rows) == 1
    assert len(ev_rows) == 1
    assert (rm_rows[0].score, rm_rows[0].step, rm_rows[0].ts) == (20.0, 0.8, world.now)
    assert rm_rows[0].attributes == f'{{"from_ls_id":{ids[0]},"from_ss_id":{rm.id}}}'
    assert (rm_rows[0].offset, rm_rows[0].rtt) == (None, None)
    assert ev_rows[0].score == pytest.approx(-3.95, abs=1e-12)
    assert world.server(S1) == (world.now, 20.0)
    assert world.cursor(RM) == ids[-1]
    assert world.cursor(EV) == ids[-1]

    before = (world.outputs(RM), world.outputs(EV), world.server_score(S1, EV), world.server(S1))
    assert runner.run() == 0
    after = (world.outputs(RM), world.outputs(EV), world.server_score(S1, EV), world.server(S1))
    assert before == after


def test_ts12_no_scorers_configured(db, clock) -> None:  # type: ignore[no-untyped-def]
    from .conftest import build_world

    world = build_world(db, clock, scorers=())
    with pytest.raises(NoScorersError, match="no scorers configured"):
        world.runner().run()


def test_ts11_concurrent_runners_in_threads(world: World) -> None:
    import threading

    ids = [world.log(S2, M4, 19.5, 0.7, world.now - timedelta(minutes=i)) for i in range(50)]
    runners = [world.runner(), world.runner()]
    results: list[int] = []
    errors: list[BaseException] = []

    def go(runner) -> None:  # type: ignore[no-untyped-def]
        try:
            results.append(runner.run())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(results) == 100
    rm = world.server_score(S2, RM)
    assert rm is not None and rm.status == "active"
    ev = world.server_score(S2, EV)
    assert ev is not None
    assert ev.score_raw == pytest.approx(12.922770346125992, abs=1e-9)
    from_ls = [attrs(r.attributes)["from_ls_id"] for r in world.outputs(RM)]
    assert len(from_ls) == len(set(from_ls))
    assert world.cursor(RM) == world.cursor(EV) == ids[-1]


@pytest.mark.parametrize(
    ("expected_counts", "cursor_offsets"),
    [((4, 4, 2, 0), (2, 4, 5, 5))],
)
def test_ts14_batching(
    world: World, expected_counts: tuple[int, ...], cursor_offsets: tuple[int, ...]
) -> None:
    world.setting({"batch_size": 2})
    ids = [world.log(S1, M3, 20.0 - i, 0.8, world.now - timedelta(minutes=5 - i)) for i in range(5)]
    assert ids == list(range(world.seed_id + 1, world.seed_id + 6))
    runner = world.runner()
    for count, offset in zip(expected_counts, cursor_offsets, strict=True):
        assert runner.run() == count
        assert world.cursor(RM) == world.cursor(EV) == world.seed_id + offset


@pytest.mark.parametrize(
    "setting",
    [None, {"batch_size": 0}, {"other": 5}, "not json", {"batch_size": -3}, {"batch_size": "7"}],
)
def test_ts15_settings_fall_back_to_50(world: World, setting: object) -> None:
    from sqlalchemy import delete, insert

    from ntpmon.db.tables import system_settings

    with world.engine.begin() as conn:
        conn.execute(delete(system_settings))
        if setting == "not json":
            conn.execute(
                insert(system_settings).values(key="scorer", value="not json", created_on=world.now)
            )
    if isinstance(setting, dict):
        world.setting(setting)
    for i in range(55):
        world.log(S1, M3, 20.0, 0.8, world.now - timedelta(seconds=i))
    assert world.runner().run() == 100


def test_ts16_id_gap_is_not_skipped(world: World) -> None:
    from sqlalchemy import insert

    from ntpmon.db.common import log_score_values
    from ntpmon.db.tables import log_scores

    c = world.seed_id

    def row(id: int, monitor: int | None) -> None:
        values = log_score_values(
            server_id=S1,
            monitor_id=monitor,
            ts=world.now - timedelta(minutes=1),
            score=19.0,
            step=1.0,
            offset=None,
            rtt=None,
            attributes=None,
        )
        with world.engine.begin() as conn:
            conn.execute(insert(log_scores).values(id=id, **values))

    row(c + 5, RM)  # a scorer's own output row inside the window
    row(c + 6, None)  # a row without a monitor
    row(c + 12000, M3)
    row(c + 12001, M3)
    runner = world.runner()
    assert runner.run() == 4
    assert world.cursor(RM) == world.cursor(EV) == c + 12001
    from_ls = {attrs(r.attributes)["from_ls_id"] for r in world.outputs(RM) if r.id > c + 6}
    assert from_ls == {c + 12000}  # the second row repeats the first: suppressed
    rm = world.server_score(S1, RM)
    assert rm is not None and rm.score_ts == world.now - timedelta(minutes=1)
    assert runner.run() == 0


def test_ts20_status_forced_active(world: World) -> None:
    from ntpmon.db.common import update_server_score_status

    for status in ("testing", "paused"):
        with world.engine.begin() as conn:
            update_server_score_status(conn, monitor_id=RM, server_id=S1, status=status)
        world.log(S1, M3, 17.25, 0.5, world.now)
        world.runner().run()
        rm = world.server_score(S1, RM)
        assert rm is not None
        assert (rm.status, rm.score_raw) == ("active", 17.25)


def test_ts21_servers_score_is_forward_only(world: World) -> None:
    t = world.now - timedelta(minutes=30)
    world.log(S1, M3, 11.0, 1.0, t + timedelta(minutes=2))
    world.log(S1, M3, 12.0, 1.0, t)
    world.log(S1, M3, 13.0, 1.0, t + timedelta(minutes=1))
    world.runner().run()
    assert world.server(S1) == (t + timedelta(minutes=2), 11.0)
    rm = world.server_score(S1, RM)
    assert rm is not None
    assert rm.score_ts == t + timedelta(minutes=1)


def test_ts24_dedup_memory_is_per_runner(world: World) -> None:
    world.setting({"batch_size": 2})
    for minutes in (10, 9, 8, 7):
        world.log(S1, M3, 20.0, 1.0, world.now - timedelta(minutes=minutes))
    runner = world.runner()
    runner.run()
    runner.run()
    one_instance = len(world.outputs(RM))

    from ntpmon.testing.databases import empty_tables

    from .conftest import build_world

    empty_tables(world.engine)
    fresh = build_world(world.engine, world.clock)
    fresh.setting({"batch_size": 2})
    for minutes in (10, 9, 8, 7):
        fresh.log(S1, M3, 20.0, 1.0, fresh.now - timedelta(minutes=minutes))
    fresh.runner().run()
    fresh.runner().run()
    two_instances = len(fresh.outputs(RM))
    assert (one_instance, two_instances) == (1, 2)


def test_ts19_three_hour_rule_skips_old_rows(db, clock) -> None:  # type: ignore[no-untyped-def]
    from .conftest import S3, build_world

    world = build_world(db, clock, scorers=(RM,))
    world.assign(S3, M4, "paused")
    old = world.log(S3, M4, 5.0, -1.0, world.now - timedelta(hours=4))
    assert world.runner().run() == 1
    assert world.cursor(RM) == old
    rm = world.server_score(S3, RM)
    assert rm is not None
    assert (rm.score_raw, rm.status, rm.score_ts) == (-5.0, "active", None)
    assert world.outputs(RM) == []


def test_ts19_recent_unscoreable_row_fails_the_batch(db, clock) -> None:  # type: ignore[no-untyped-def]
    from .conftest import S3, build_world

    world = build_world(db, clock, scorers=(RM,))
    world.assign(S3, M4, "paused")
    world.log(S1, M3, 19.0, 1.0, world.now - timedelta(minutes=11))
    world.log(S3, M4, 5.0, -1.0, world.now - timedelta(minutes=10))
    runner = world.runner()
    with pytest.raises(BatchError, match=f'scorer "recentmedian": no recent scores found for {S3}'):
        runner.run()
    assert world.cursor(RM) == world.seed_id
    assert world.outputs(RM) == []
    assert world.server_score(S3, RM) is None
    rm = world.server_score(S1, RM)
    assert rm is not None and (rm.status, rm.score_raw) == ("candidate", 0.0)
    assert world.server(S1) == (None, 0.0)


@pytest.mark.parametrize(
    ("age", "fails"), [(timedelta(minutes=10), True), (timedelta(hours=4), False)]
)
def test_ts22_invalid_attributes(db, clock, age: timedelta, fails: bool) -> None:  # type: ignore[no-untyped-def]
    from .conftest import build_world

    world = build_world(db, clock, scorers=(RM,))
    bad = world.log(S1, M3, 19.0, 1.0, world.now - age, attributes="{bad")
    runner = world.runner()
    if fails:
        with pytest.raises(BatchError, match='scorer "recentmedian": invalid attributes JSON'):
            runner.run()
        assert world.cursor(RM) == world.seed_id
    else:
        assert runner.run() == 1
        assert world.cursor(RM) == bad
    assert world.outputs(RM) == []


@pytest.mark.slow
def test_ts13_one_run_takes_one_batch_of_a_large_backlog(world: World) -> None:
    from ntpmon.db.common import insert_log_scores, log_score_values

    rows = [
        log_score_values(
            server_id=S1,
            monitor_id=M3,
            ts=world.now - timedelta(seconds=i),
            score=20 + (i % 100) / 100,
            step=0.8,
            offset=None,
            rtt=None,
            attributes=None,
        )
        for i in range(10_000)
    ]
    with world.engine.begin() as conn:
        insert_log_scores(conn, rows)
    assert world.runner().run() == 200
    assert world.cursor(RM) == world.cursor(EV) == world.seed_id + 100


def test_a_stop_request_starts_no_further_batch(world: World) -> None:
    import threading

    world.log(S1, M3, 19.0, 1.0, world.now)
    stop = threading.Event()
    stop.set()
    assert world.runner().run(stop) == 0
    assert world.cursor(RM) == world.cursor(EV) == world.seed_id


def test_one_scorer_failing_leaves_the_others_batch_committed(db, clock) -> None:  # type: ignore[no-untyped-def]
    """every (first in name order) commits its batch; recentmedian's error is raised and its
    cursor stays put."""
    from .conftest import EV, S3, build_world

    world = build_world(db, clock, scorers=(EV, RM))
    world.assign(S3, M4, "paused")
    world.log(S1, M3, 19.0, 1.0, world.now - timedelta(minutes=11))
    last = world.log(S3, M4, 5.0, -1.0, world.now - timedelta(minutes=10))
    runner = world.runner()
    with pytest.raises(BatchError, match=f'scorer "recentmedian": no recent scores found for {S3}'):
        runner.run()
    assert world.cursor(RM) == world.seed_id
    assert world.outputs(RM) == []
    assert world.cursor(EV) == last
    assert len(world.outputs(EV)) == 2
    assert runner.metrics.plain.errors == 1
