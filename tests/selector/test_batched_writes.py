"""The batched writes (one UPDATE per server, one reschedule per batch) leave exactly the rows
the one-statement-per-write path of upstream leaves, on MariaDB and SQLite."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from selector_seed import Seeder, review_row
from sqlalchemy import Connection, Engine, select

from ntpmon.common.clock import FixedClock
from ntpmon.db import selector as q
from ntpmon.db.common import update_server_score_status
from ntpmon.db.tables import server_scores
from ntpmon.selector import (
    ClearViolation,
    ServerInfo,
    ServerPlan,
    ServerStatus,
    SetPauseReason,
    SetStatus,
    SetViolation,
    StatusChange,
    TouchLastCheck,
    ViolationType,
    Write,
)
from ntpmon.selector.db import SelectorStore

pytestmark = pytest.mark.db

MONITORS = 6
VIOLATIONS = [v for v in ViolationType if v != ViolationType.NONE]


def random_writes(rng: random.Random, monitor_ids: list[int], now: datetime) -> list[Write]:
    """A few writes of every kind, several per monitor in a random order."""
    writes: list[Write] = []
    for _ in range(rng.randrange(0, 12)):
        mid = rng.choice(monitor_ids)
        kind = rng.randrange(5)
        if kind == 0:
            phase = rng.choice(["change", "constraint"])
            writes.append(SetStatus(mid, rng.choice(list(ServerStatus)), phase=phase))
        elif kind == 1:
            since = now - timedelta(hours=rng.randrange(0, 200), seconds=rng.randrange(60))
            writes.append(SetViolation(mid, rng.choice(VIOLATIONS), since))
        elif kind == 2:
            writes.append(ClearViolation(mid))
        elif kind == 3:
            writes.append(SetPauseReason(mid, rng.choice(["constraint", "limit"])))
        else:
            writes.append(TouchLastCheck(mid))
    return writes


def apply_row_by_row(conn: Connection, server_id: int, writes: list[Write], now: datetime) -> None:
    """The reference: every write as its own single-row query (Q5, Q32–Q35), in order."""
    for w in writes:
        key = {"server_id": server_id, "monitor_id": w.monitor_id}
        if isinstance(w, SetStatus):
            update_server_score_status(conn, **key, status=w.status)
        elif isinstance(w, SetViolation):
            q.update_server_score_constraint_violation(conn, **key, type=w.type, since=w.since)
        elif isinstance(w, ClearViolation):
            q.clear_server_score_constraint_violation(conn, **key, now=now)
        elif isinstance(w, SetPauseReason):
            q.update_server_score_pause_reason(conn, **key, pause_reason=w.reason, now=now)
        else:
            q.update_server_score_last_constraint_check(conn, **key, now=now)


def rows_by_monitor(conn: Connection, server_id: int) -> dict[int, dict]:
    ss = server_scores
    result = {}
    for row in conn.execute(select(ss).where(ss.c.server_id == server_id)):
        values = dict(row._mapping)
        for column in ("id", "server_id", "modified_on"):
            values.pop(column)
        result[values["monitor_id"]] = values
    return result


def test_one_update_per_server_equals_one_per_write(db: Engine, clock: FixedClock) -> None:
    """Random write sequences (several writes per monitor, every kind) on twin servers."""
    rng = random.Random(20261126)
    for round_ in range(15):
        now = clock.now() + timedelta(minutes=round_)
        with db.begin() as conn:
            seed = Seeder(conn, now, tag=f"-{round_}")
            batched = seed.server(f"192.0.2.{2 * round_ + 1}")
            reference = seed.server(f"192.0.2.{2 * round_ + 2}")
            mids = [seed.monitor(i, f"10.{round_}.{i}.1", count=1) for i in range(1, MONITORS + 1)]
            writes = random_writes(rng, mids, now)
            changes = [
                StatusChange(w.monitor_id, ServerStatus.CANDIDATE, w.status, "test")
                for w in writes
                if isinstance(w, SetStatus) and w.phase == "change"
            ]
            plan = ServerPlan(ServerInfo(batched, None, "192.0.2.1", "v4"), [], changes, writes)
            result = SelectorStore(conn).apply_plan(plan, now)
            apply_row_by_row(conn, reference, writes, now)
            assert result.applied == changes
            assert result.failed == [] and result.failed_writes == 0
            assert rows_by_monitor(conn, batched) == rows_by_monitor(conn, reference), writes


def test_batch_reschedule_equals_one_per_server(db: Engine, clock: FixedClock) -> None:
    """Q28/Q29 for a whole batch write the same review rows as one statement per server."""
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        ids = [seed.server(f"192.0.2.{i}") for i in range(1, 9)]  # each with its review row
    with db.begin() as conn:
        store = SelectorStore(conn)
        store.schedule_reviews(now, changed=ids[0:2], unchanged=ids[2:4])
        for sid, changed in zip(ids[4:8], (True, True, False, False), strict=True):
            store.schedule_review(sid, now, changed)
    with db.connect() as conn:
        rows = [review_row(conn, sid) for sid in ids]
    strip = [{k: v for k, v in r.items() if k not in ("id", "server_id")} for r in rows]
    assert strip[0:4] == strip[4:8]
    assert strip[0]["last_change"] is not None and strip[2]["last_change"] is None


def test_batch_load_equals_one_server_at_a_time(db: Engine, clock: FixedClock) -> None:
    """Q30/Q31 for a batch give each server exactly the inputs of its own Q30/Q31, on a
    generated pool (shared monitors, unhealthy ones, stored violations, a server without
    data); a missing server is left out."""
    rng = random.Random(7)
    now = clock.now()
    with db.begin() as conn:
        seed = Seeder(conn, now)
        ids = []
        for s in range(1, 7):
            ids.append(seed.server(f"192.0.2.{s}", account=s if s % 3 == 0 else None))
            if s == 4:
                continue  # no monitor has data for this one
            for i in range(rng.randrange(2, 6)):
                label = 10 * s + i
                seed.monitor(
                    label,
                    f"10.{s}.{i}.1",
                    status=rng.choice(["candidate", "testing", "active", "paused"]),
                    account=rng.choice([None, 50, 51]),
                    priority=rng.randrange(5, 150),
                    count=rng.randrange(1, 30),
                    healthy=rng.random() > 0.2,
                )
                if rng.random() < 0.4:
                    seed.store_violation(
                        label,
                        "limit",
                        now - timedelta(hours=3),
                        last_check=now,
                        pause_reason="constraint",
                    )
    missing = max(ids) + 100
    with db.connect() as conn:
        store = SelectorStore(conn)
        batch = store.load_inputs([*ids, missing], now)
        assert sorted(batch) == sorted(ids)
        for sid in ids:
            assert batch[sid].server == store.load_server(sid)
            assert batch[sid].rows == store.load_monitor_rows(sid, now)
        assert batch[ids[3]].rows == []
        assert sum(len(batch[sid].rows) for sid in ids) > 10
