"""The worked examples of spec/scorer.md §15.2 (TS-17) and §15.3 (TS-18), number for number."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from ntpmon.common.clock import FixedClock
from ntpmon.scorer.statusscore import Measurement, score

from .conftest import EV, RM, World, build_world

pytestmark = pytest.mark.db

T = datetime(2025, 1, 1, 12, 0, 0)
MS = 1_000_000


def minutes(n: int) -> datetime:
    return T + timedelta(minutes=n)


def base_world(db: Engine, clock: FixedClock, scorers: tuple[int, ...]) -> World:
    clock.set(datetime(2025, 1, 1, 13, 0, 0, tzinfo=UTC))
    return build_world(db, clock, scorers=scorers)


# §15.2: monitor 11 on server 100, five samples; (offset ns or None for no response, rtt µs)
SAMPLES = [
    (10 * MS, 1.0, 1.0),
    (50 * MS, 0.83365, 1.78365),
    (None, -5.0, -3.3055325),
    (5000 * MS, -4.0, -20.0),
    (200 * MS, 0.2694, -18.7306),
]
EV_SCORES = [-3.75, -2.72885, -7.5924075, -20.0, -18.7306]


def test_ts17_one_monitor_pipeline(db: Engine, clock: FixedClock) -> None:
    world = base_world(db, clock, (RM, EV))
    world.add_monitor(11)
    world.add_server(100, "192.0.2.100")
    world.assign(100, 11, "active", 0.0)
    seed = world.log(100, 11, 0.0, 0.0, T - timedelta(days=1))
    world.set_cursor(RM, seed)
    world.set_cursor(EV, seed)

    ids, monitor_score = [], 0.0
    for i, (offset_ns, step, expected) in enumerate(SAMPLES):
        m = Measurement(
            ts=minutes(i),
            offset_ns=offset_ns,
            rtt_ns=(20 + i) * MS,
            stratum=2,
            no_response=offset_ns is None,
        )
        result = score(m)
        assert result.step == step
        monitor_score = result.accumulate(monitor_score)
        assert monitor_score == pytest.approx(expected, abs=1e-9)
        ids.append(
            world.log(
                100,
                11,
                monitor_score,
                result.step,
                m.ts,
                rtt=result.rtt_us,
                offset=result.offset_s,
                attributes=result.attributes,
            )
        )

    runner = world.runner(metrics=None)
    assert runner.run() == 10

    ev_rows = world.outputs(EV)
    assert [r.score for r in ev_rows] == pytest.approx(EV_SCORES, abs=1e-9)
    assert [r.step for r in ev_rows] == [s[1] for s in SAMPLES]
    assert [r.offset for r in ev_rows] == [0.01, 0.05, None, 5.0, 0.2]
    assert [r.rtt for r in ev_rows] == [20000, 21000, 22000, 23000, 24000]
    assert [r.ts for r in ev_rows] == [minutes(i) for i in range(5)]

    rm_ss = world.server_score(100, RM)
    assert rm_ss is not None
    rm_rows = world.outputs(RM)
    assert [r.score for r in rm_rows] == pytest.approx([s[2] for s in SAMPLES], abs=1e-9)
    assert [r.step for r in rm_rows] == [s[1] for s in SAMPLES]
    assert all(r.offset is None and r.rtt is None for r in rm_rows)
    assert [r.attributes for r in rm_rows] == [
        f'{{"from_ls_id":{i},"from_ss_id":{rm_ss.id}}}' for i in ids
    ]

    for scorer in (RM, EV):
        ss = world.server_score(100, scorer)
        assert ss is not None
        assert (ss.score_ts, ss.status) == (minutes(4), "active")
        assert ss.score_raw == pytest.approx(-18.7306, abs=1e-9)
        assert world.cursor(scorer) == ids[-1]
    ts, raw = world.server(100)
    assert ts == minutes(4)
    assert raw == pytest.approx(-18.7306, abs=1e-9)

    metrics = runner.metrics
    sql = {
        op: metrics.sql_updates.labels(operation=op)._value.get()
        for op in (
            "insert_log_score",
            "update_server_score",
            "update_server",
            "update_scorer_status",
            "insert_server_score",
            "update_server_score_status",
        )
    }
    assert sql == {
        "insert_log_score": 10,
        "update_server_score": 10,
        "update_server": 5,
        "update_scorer_status": 2,
        "insert_server_score": 2,
        "update_server_score_status": 2,
    }
    assert metrics.plain.processed == {"every": 5, "recentmedian": 5}


def test_ts18_median_tie_break_fallbacks_and_dedup(db: Engine, clock: FixedClock) -> None:
    world = base_world(db, clock, (RM,))
    for monitor in (21, 22, 23, 24, 25):
        world.add_monitor(monitor)
    world.add_server(200, "192.0.2.200")
    for monitor, status in (
        (21, "active"),
        (22, "active"),
        (23, "active"),
        (24, "testing"),
        (25, "candidate"),
    ):
        world.assign(200, monitor, status)
    world.log(200, 21, 19.5, 1.0, minutes(-10), rtt=30000)
    world.log(200, 22, 12.0, 1.0, minutes(-5), rtt=80000)
    consumed = world.log(200, 24, 5.0, 1.0, minutes(-2), rtt=10000)
    world.set_cursor(RM, consumed)

    inputs = [  # monitor, minute, score, step, rtt, attributes
        (23, 0, 18.0, 1.0, 50000, None),
        (21, 1, 19.6, 1.0, 30000, None),
        (22, 2, 18.0, 0.9, 20000, None),
        (24, 3, 18.5, 0.7, 10000, '{"leap":1,"error":"RATE"}'),
        (21, 25, 19.7, 1.0, 30000, None),
        (25, 70, 3.0, -2.0, 40000, None),
        (25, 100, 2.0, -2.0, 40000, None),
    ]
    ids = [
        world.log(200, m, s, st, minutes(t), rtt=rtt, attributes=a)
        for m, t, s, st, rtt, a in inputs
    ]
    assert world.runner().run() == 7

    ss = world.server_score(200, RM)
    assert ss is not None
    expected = [  # input index, score, step, extra attributes
        (0, 18.0, 1.0, {}),
        (1, 18.0, 1.0, {}),
        (2, 18.0, 1.0, {}),
        (4, 19.7, 1.0, {}),
        (5, 19.7, 1.0, {}),
        (6, 18.5, 0.7, {"leap": 1, "error": "RATE"}),
    ]
    rows = world.outputs(RM)
    assert [(r.ts, r.score, r.step, json.loads(r.attributes or "")) for r in rows] == [
        (minutes(inputs[i][1]), sc, st, {**extra, "from_ls_id": ids[i], "from_ss_id": ss.id})
        for i, sc, st, extra in expected
    ]
    assert rows[-1].attributes == (
        f'{{"leap":1,"error":"RATE","from_ls_id":{ids[6]},"from_ss_id":{ss.id}}}'
    )
    assert (ss.score_ts, ss.score_raw) == (minutes(100), 18.5)
    assert world.server(200) == (minutes(100), 18.5)
    assert world.cursor(RM) == ids[-1]
