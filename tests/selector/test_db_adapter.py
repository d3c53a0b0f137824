"""The selector against a real database (MariaDB and SQLite): seed, run, check the rows."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from selector_notation import BASE_TESTING_IPS
from selector_seed import Seeder, assignment, review_row
from sqlalchemy import Engine, select, update

from ntpmon.common.clock import FixedClock, db_seconds
from ntpmon.db import selector as q
from ntpmon.db.admin import create_monitor
from ntpmon.db.models import MonitorType
from ntpmon.db.tables import monitors, server_scores, servers_monitor_review
from ntpmon.selector import (
    MissingRttError,
    ServerPlan,
    ServerStatus,
    SetPauseReason,
    SetStatus,
    StatusChange,
)
from ntpmon.selector.db import SelectorStore
from ntpmon.selector.metrics import SelectorMetrics
from ntpmon.selector.service import IdleBackoff, review_batch, review_one, run_loop, simulate

pytestmark = pytest.mark.db


def seed_base(seed: Seeder, *, ip7: str | None = None) -> None:
    """spec §14.5 BASE: server 192.0.2.10 (account 1), seven active and five testing monitors."""
    seed.server("192.0.2.10", account=1)
    for i in range(1, 8):
        ip = ip7 if i == 7 and ip7 else f"10.{16 * i}.0.1"
        seed.monitor(i, ip, status="active", account=100 + i, priority=i, count=40)
    for i, ip in BASE_TESTING_IPS.items():
        seed.monitor(i, ip, status="testing", account=190 + i, priority=i + 10, count=40)


def statuses(db: Engine, seed: Seeder) -> dict[int, str]:
    with db.connect() as conn:
        return {
            label: assignment(conn, seed.server_id, m.id)["status"]
            for label, m in seed.monitors.items()
            if m.label != 40
        }


def test_monitor_in_server_subnet_is_demoted_replaced_and_paused(
    db: Engine, clock: FixedClock
) -> None:
    """PS-06 through the database: 7 A>T, 11 T>A, then 7 paused with its violation stored."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed, ip7="192.0.2.77")

    review = review_one(db, clock, seed.server_id)

    ids = {label: m.id for label, m in seed.monitors.items()}
    assert review.plan is not None
    assert [(c.monitor_id, c.to_status) for c in review.plan.status_changes] == [
        (ids[7], ServerStatus.TESTING),
        (ids[11], ServerStatus.ACTIVE),
    ]
    assert review.changed
    got = statuses(db, seed)
    expected = {i: "active" for i in range(1, 7)} | {7: "paused", 11: "active"}
    expected |= {i: "testing" for i in range(12, 16)}
    assert got == expected
    with db.connect() as conn:
        m7 = assignment(conn, seed.server_id, ids[7])
        assert m7["constraint_violation_type"] == "network_same_subnet"
        assert m7["constraint_violation_since"] == db_seconds(now)
        assert m7["pause_reason"] == "constraint"
        assert m7["last_constraint_check"] == db_seconds(now)
        m11 = assignment(conn, seed.server_id, ids[11])
        assert m11["constraint_violation_type"] is None
        smr = review_row(conn, seed.server_id)
    assert smr["last_review"] == db_seconds(now)
    assert smr["last_change"] == db_seconds(now)
    assert smr["next_review"] == db_seconds(now) + timedelta(minutes=60)


@pytest.mark.parametrize(
    ("checked_hours_ago", "status", "changed"),
    [(10, "candidate", True), (4, "paused", False)],
)
def test_paused_monitor_with_resolved_subnet(
    db: Engine, clock: FixedClock, checked_hours_ago: int, status: str, changed: bool
) -> None:
    """PS-01/PS-02 through the database: the stale violation is cleared either way; the
    monitor is unpaused only when its last check is more than 8 h old."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed)
        seed.monitor(30, "198.51.100.5", status="paused", account=300, priority=10, count=12)
        seed.store_violation(
            30,
            "network_same_subnet",
            now - timedelta(hours=100),
            last_check=now - timedelta(hours=checked_hours_ago),
            pause_reason="constraint",
        )

    review = review_one(db, clock, seed.server_id)

    assert review.changed is changed
    with db.connect() as conn:
        m30 = assignment(conn, seed.server_id, seed.monitors[30].id)
        smr = review_row(conn, seed.server_id)
    assert m30["status"] == status
    assert m30["constraint_violation_type"] is None
    assert m30["constraint_violation_since"] is None
    assert m30["pause_reason"] is None
    assert m30["last_constraint_check"] == db_seconds(now)
    assert smr["last_change"] == (db_seconds(now) if changed else None)
    delay = 60 if changed else 20
    assert smr["next_review"] == db_seconds(now) + timedelta(minutes=delay)


def test_monitor_without_assignment_row_is_promoted_as_candidate(
    db: Engine, clock: FixedClock
) -> None:
    """PS-15: a NULL-status row replaces testing #15; its own UPDATE hits no row (Q13)."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed)
        seed.monitor(40, "203.0.113.9", status=None, account=400, priority=1, count=12)

    review = review_one(db, clock, seed.server_id)

    assert review.plan is not None
    assert review.plan.status_changes[0].to_status == ServerStatus.CANDIDATE
    assert review.result is not None and len(review.result.applied) == 2
    assert statuses(db, seed)[15] == "candidate"
    with db.connect() as conn:
        rows = conn.execute(
            select(server_scores.c.id).where(server_scores.c.monitor_id == seed.monitors[40].id)
        ).all()
    assert rows == []


def test_monitor_priority_rows(db: Engine, clock: FixedClock) -> None:
    """Q31: aggregates, MySQL rounding, 24 h window, agent monitors only, best first."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed.server("192.0.2.10")
        seed.monitor(1, "10.1.0.1", status="active", priority=20, count=3)
        seed.monitor(2, "10.2.0.1", status="testing", priority=5, count=2, healthy=False)
        seed.monitor(3, "10.3.0.1", status=None, priority=7, count=4, flags={"x": 1}, account=9)
        mid4 = seed.monitor(4, "10.4.0.1", status="candidate", priority=1, count=0)
        # Outside the window (exactly 24 h old is excluded: ts > now - 24 h).
        seed.logs(mid4, [now - timedelta(hours=24), now - timedelta(hours=30)], rtt=1000)
        # 2.5 ms average: 2500 µs → priority round(2.5 × 1) = 2 (half to even).
        mid5 = seed.monitor(5, "10.5.0.1", status="candidate", priority=2, count=1)
        seed.logs(mid5, [now - timedelta(minutes=1)], rtt=3000)
        scorer = create_monitor(conn, tls_name="scorer", ip="10.9.0.1", now=now)
        conn.execute(
            update(monitors).where(monitors.c.id == scorer).values(type=str(MonitorType.SCORE))
        )
        seed.logs(scorer, [now], rtt=1000)

    with db.connect() as conn:
        rows = q.get_monitor_priority(conn, server_id=seed.server_id, now=now)

    by_label = {next(k for k, m in seed.monitors.items() if m.id == r.id): r for r in rows}
    assert [next(k for k, m in seed.monitors.items() if m.id == r.id) for r in rows] == [5, 3, 1, 2]
    assert by_label[5].avg_rtt == pytest.approx(2.5)
    assert by_label[5].monitor_priority == 2
    assert by_label[5].count == 2
    assert by_label[1].monitor_priority == 20 and by_label[1].healthy and by_label[1].count == 3
    assert by_label[1].status == "active" and by_label[1].monitor_status == "active"
    assert by_label[2].healthy is False and by_label[2].monitor_priority == 25
    assert by_label[2].avg_step == -1.0
    assert by_label[3].status is None and by_label[3].account_flags is not None
    assert by_label[3].id_token == "tok-3" and by_label[3].tls_name == "mon3.test"


def test_mysql_rounding_of_priority() -> None:
    """AVG(rtt) keeps 4 decimals rounded half up; ROUND of the double is half-to-even."""
    avg = q.mysql_avg_rtt_ms(5, 3)  # 1.66666… µs → 1.6667 → 0.0016667 ms
    assert str(avg) == "0.0016667"
    assert q.monitor_priority(q.mysql_avg_rtt_ms(3500, 1), 1.0) == 4
    assert q.monitor_priority(q.mysql_avg_rtt_ms(4500, 1), 1.0) == 4
    assert q.monitor_priority(q.mysql_avg_rtt_ms(1000, 1), 0.5) == 2
    assert q.monitor_priority(None, 1.0) is None


def test_due_servers_order_and_limit(db: Engine, clock: FixedClock) -> None:
    """Q27: never-reviewed first, then oldest due; future reviews are skipped."""
    now = clock.now()
    smr = servers_monitor_review
    with db.begin() as conn:
        seed = Seeder(conn, now)
        ids = [seed.server(f"192.0.2.{i}") for i in range(1, 6)]
        plan = {
            ids[0]: now - timedelta(minutes=5),
            ids[1]: None,
            ids[2]: now + timedelta(minutes=5),
            ids[3]: now - timedelta(minutes=50),
            ids[4]: db_seconds(now),
        }
        for sid, when in plan.items():
            conn.execute(
                update(smr)
                .where(smr.c.server_id == sid)
                .values(next_review=db_seconds(when) if when else None)
            )
    with db.connect() as conn:
        assert q.get_servers_monitor_review(conn, now=now) == [ids[1], ids[3], ids[0], ids[4]]
        assert q.get_servers_monitor_review(conn, now=now, limit=2) == [ids[1], ids[3]]


def test_batch_reviews_due_servers_and_survives_a_failing_one(
    db: Engine, clock: FixedClock
) -> None:
    """A server whose monitor has no rtt fails alone and is still rescheduled (+20 min)."""
    now = clock.now()
    with db.begin() as conn:
        good = Seeder(conn, now)
        seed_base(good)
        bad = Seeder(conn, now, tag="b")
        bad.server("198.51.100.1")
        mid = bad.monitor(1, "10.200.0.1", status="candidate", priority=1, count=0)
        bad.logs(mid, [now - timedelta(minutes=1)], rtt=None)
        later = Seeder(conn, now, tag="l")
        later.server("198.51.100.2")
        smr = servers_monitor_review
        conn.execute(
            update(smr)
            .where(smr.c.server_id == later.server_id)
            .values(next_review=db_seconds(now + timedelta(minutes=1)))
        )
    registry = CollectorRegistry()

    reviews = review_batch(db, clock, SelectorMetrics(registry))

    assert sorted(r.server_id for r in reviews) == sorted([good.server_id, bad.server_id])
    failed = next(r for r in reviews if r.server_id == bad.server_id)
    assert failed.error is not None and "no rtt" in failed.error
    with db.connect() as conn:
        for sid in (good.server_id, bad.server_id):
            row = review_row(conn, sid)
            assert row["last_review"] == db_seconds(now)
            assert row["next_review"] == db_seconds(now) + timedelta(minutes=20)
            assert row["last_change"] is None
        assert review_row(conn, later.server_id)["last_review"] is None
    sid = str(good.server_id)
    assert registry.get_sample_value("selector_monitors_evaluated_total", {"server_id": sid}) == 12
    assert (
        registry.get_sample_value(
            "selector_monitor_pool_size", {"status": "active", "server_id": sid}
        )
        == 7
    )
    assert registry.get_sample_value("selector_changes_applied_total", {"server_id": sid}) == 0
    assert registry.get_sample_value("selector_process_duration_seconds_count") == 1


def test_review_one_reports_missing_rtt(db: Engine, clock: FixedClock) -> None:
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed.server("198.51.100.1")
        mid = seed.monitor(1, "10.200.0.1", status="candidate", priority=1, count=0)
        seed.logs(mid, [now], rtt=None)
    with pytest.raises(MissingRttError, match=f"monitor {mid}"):
        review_one(db, clock, seed.server_id)


def test_status_change_metrics(db: Engine, clock: FixedClock) -> None:
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed, ip7="192.0.2.77")
    registry = CollectorRegistry()
    review_one(db, clock, seed.server_id, SelectorMetrics(registry))
    labels = {
        "monitor_id_token": "tok-11",
        "monitor_tls_name": "mon11.test",
        "from_status": "testing",
        "to_status": "active",
        "server_id": str(seed.server_id),
        "reason": "promotion to active",
    }
    assert registry.get_sample_value("selector_status_changes_total", labels) == 1
    assert (
        registry.get_sample_value(
            "selector_changes_applied_total", {"server_id": str(seed.server_id)}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            "selector_constraint_violations_total",
            {
                "monitor_id_token": "tok-7",
                "monitor_tls_name": "mon7.test",
                "constraint_type": "network_same_subnet",
                "server_id": str(seed.server_id),
            },
        )
        == 1
    )


def test_simulate_writes_nothing(db: Engine, clock: FixedClock) -> None:
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed, ip7="192.0.2.77")
    before = statuses(db, seed)

    plan = simulate(db, clock, seed.server_id)

    assert plan.changed and len(plan.status_changes) == 2
    assert statuses(db, seed) == before
    with db.connect() as conn:
        assert review_row(conn, seed.server_id)["last_review"] is None


def test_failed_writes_follow_upstream_policy(db: Engine, clock: FixedClock) -> None:
    """A failing status change is counted and the rest go on; a failing constraint write
    skips that monitor's remaining writes (§9.1, §9.2)."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed_base(seed)
    ids = {label: m.id for label, m in seed.monitors.items()}
    bogus = StatusChange(ids[1], ServerStatus.ACTIVE, "bogus", "test")  # type: ignore[arg-type]
    good = StatusChange(ids[11], ServerStatus.TESTING, ServerStatus.ACTIVE, "test")
    writes = [
        SetStatus(ids[1], "bogus"),  # type: ignore[arg-type]
        SetStatus(ids[11], ServerStatus.ACTIVE),
        SetStatus(ids[2], "bogus", phase="constraint"),  # type: ignore[arg-type]
        SetPauseReason(ids[2], "constraint"),
        SetPauseReason(ids[3], "constraint"),
    ]
    with db.begin() as conn:
        store = SelectorStore(conn)
        plan = ServerPlan(store.load_server(seed.server_id), [], [bogus, good], writes)
        result = store.apply_plan(plan, now)
    assert result.applied == [good]
    assert result.failed == [bogus]
    assert result.failed_writes == 2
    with db.connect() as conn:
        assert assignment(conn, seed.server_id, ids[1])["status"] == "active"
        assert assignment(conn, seed.server_id, ids[11])["status"] == "active"
        assert assignment(conn, seed.server_id, ids[2])["pause_reason"] is None
        assert assignment(conn, seed.server_id, ids[3])["pause_reason"] == "constraint"


def test_run_loop_takes_batches_of_ten_until_idle(db: Engine, clock: FixedClock) -> None:
    with db.begin() as conn:
        seed = Seeder(conn, clock.now())
        for i in range(12):
            seed.server(f"192.0.2.{i + 1}")
    stop = threading.Event()
    sizes: list[int] = []

    def on_batch(reviews: list) -> None:
        sizes.append(len(reviews))
        if not reviews:
            stop.set()

    run_loop(db, clock, None, stop, backoff=IdleBackoff(first=0.01), on_batch=on_batch)

    assert sizes == [10, 2, 0]


def test_idle_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = IdleBackoff(jitter=0.0)
    assert [backoff.delay() for _ in range(7)] == [3.0, 6.0, 12.0, 24.0, 48.0, 60.0, 60.0]
    backoff.reset()
    assert backoff.delay() == 3.0
    assert all(2.4 <= IdleBackoff().delay() <= 3.6 for _ in range(20))


def test_assignment_updates_q32_to_q35(db: Engine, clock: FixedClock) -> None:
    """Each violation query writes exactly its columns of one (server, monitor) row."""
    now = clock.now()
    earlier = now - timedelta(hours=5)
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed.server("192.0.2.10")
        mid = seed.monitor(1, "10.1.0.1", status="candidate", count=1)
        other = seed.monitor(2, "10.2.0.1", status="candidate", count=1)
        key = {"server_id": seed.server_id, "monitor_id": mid}
        steps = [
            (
                lambda: q.update_server_score_constraint_violation(
                    conn, **key, type="limit", since=earlier
                ),
                {"constraint_violation_type": "limit", "constraint_violation_since": earlier},
            ),
            (
                lambda: q.update_server_score_pause_reason(
                    conn, **key, pause_reason="constraint", now=earlier
                ),
                {"pause_reason": "constraint", "last_constraint_check": earlier},
            ),
            (
                lambda: q.update_server_score_last_constraint_check(conn, **key, now=now),
                {"last_constraint_check": now},
            ),
            (
                lambda: q.clear_server_score_constraint_violation(conn, **key, now=now),
                {
                    "constraint_violation_type": None,
                    "constraint_violation_since": None,
                    "pause_reason": None,
                    "last_constraint_check": now,
                },
            ),
        ]
        for run, expected in steps:
            assert run() == 1
            row = assignment(conn, seed.server_id, mid)
            for column, value in expected.items():
                want = db_seconds(value) if isinstance(value, type(now)) else value
                assert row[column] == want, column
        untouched = assignment(conn, seed.server_id, other)
        assert untouched["constraint_violation_type"] is None
        assert untouched["last_constraint_check"] is None
