"""Pure scorer rules without a database: dedup (TS-6, §15.4), median, every, attributes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ntpmon.db.models import LogScore
from ntpmon.scorer.errors import ScoringError
from ntpmon.scorer.every import every_score, far_offset
from ntpmon.scorer.history import ScoreHistory, close
from ntpmon.scorer.recentmedian import (
    MAX_SERVERS_PER_LOAD,
    ServerWindow,
    choose,
    median_score,
    plan_loads,
)
from ntpmon.scorer.runner import batch_size_from_setting
from ntpmon.scorer.score import AttributesError, decode_attributes, encode_attributes
from ntpmon.scorer.service import Backoff

T = datetime(2025, 1, 1, 12, 0, 0)


def ls(
    id: int,
    score: float = 0.0,
    *,
    ts: datetime = T,
    monitor: int = 1,
    server: int = 1,
    rtt: int | None = None,
    step: float = 0.0,
    offset: float | None = None,
    attributes: str | None = None,
) -> LogScore:
    return LogScore(id, monitor, server, ts, score, step, offset, rtt, attributes)


# --- dedup -------------------------------------------------------------------------------


def test_ts6_last_score() -> None:
    h = ScoreHistory()
    t0 = T - timedelta(minutes=20)
    assert h.is_new(1, t0, 19.8022327058068)
    assert not h.is_new(1, t0 + timedelta(minutes=1), 19.8022327058068)
    assert h.is_new(1, t0 + timedelta(minutes=15), 19.8022327058068)
    assert h.is_new(1, t0 + timedelta(minutes=20), 19.8022327058)


TIMELINE = [  # minute, score, new?
    (0, 15.0, True),
    (14, 15.0, False),
    (15, 15.0, True),
    (16, 14.4, False),
    (19, 14.2, True),
    (18, 14.0, False),
    (19, 14.2, False),
    (24, 0.0, True),
    (25, 0.0, False),
    (26, 1e-13, False),
    (40, 0.0, True),
]


def test_dedup_timeline_of_15_4() -> None:
    h = ScoreHistory()
    decisions = [h.is_new(7, T + timedelta(minutes=m), s) for m, s, _ in TIMELINE]
    assert decisions == [new for _, _, new in TIMELINE]


def test_staged_history_applies_only_when_told() -> None:
    h = ScoreHistory()
    staged = h.stage()
    assert staged.is_new(1, T, 10.0)
    assert not staged.is_new(1, T + timedelta(minutes=1), 10.0)
    assert h.last(1) is None  # a rolled-back batch leaves no trace
    h.apply(staged)
    assert h.last(1) == (T, 10.0)
    assert not h.stage().is_new(1, T + timedelta(minutes=2), 10.0)


@pytest.mark.parametrize(
    ("new", "last", "expected"),
    [
        (0.0, 0.0, True),
        (0.0, 1e-12, True),
        (0.0, 2e-12, False),
        (10.5, 10.0, True),
        (10.51, 10.0, False),
        (-9.5, -10.0, True),
        (-10.6, -10.0, False),
    ],
)
def test_close(new: float, last: float, expected: bool) -> None:
    assert close(new, last) is expected


# --- recentmedian --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "chosen_id"),
    [
        ([ls(1, 5.0)], 1),
        ([ls(1, 9.0), ls(2, 1.0)], 1),  # two rows: the oldest (first), not the lower (SQ8)
        ([ls(1, 3.0), ls(2, 1.0), ls(3, 2.0)], 3),
        ([ls(1, 4.0), ls(2, 1.0), ls(3, 3.0), ls(4, 2.0)], 4),  # even: lower median
        ([ls(1, 18.0, rtt=50000), ls(2, 19.6), ls(3, 18.0, rtt=20000)], 1),
        ([ls(1, 18.0, rtt=50000), ls(2, 18.0), ls(3, 18.0, rtt=None), ls(4, 19.0)], 3),
        ([ls(1, 2.0, rtt=5), ls(2, 2.0, rtt=5), ls(3, 2.0, rtt=5)], 2),  # stable
    ],
)
def test_choose(rows: list[LogScore], chosen_id: int) -> None:
    assert choose(rows).id == chosen_id


def test_window_takes_latest_per_monitor_inclusive_bounds_and_equal_ts() -> None:
    rows = [
        ls(1, ts=T - timedelta(seconds=1200), monitor=1),  # exactly at the lower bound
        ls(2, ts=T - timedelta(seconds=1201), monitor=2),  # just outside
        ls(3, ts=T, monitor=3),
        ls(4, ts=T, monitor=3),  # same second: both returned (SQ23)
        ls(5, ts=T + timedelta(seconds=1), monitor=4),  # in the future of T
        ls(6, ts=T - timedelta(minutes=5), monitor=3),  # older than monitor 3's latest
    ]
    window = ServerWindow(rows)
    assert [r.id for r in window.recent(T, 1200)] == [1, 3, 4]
    assert [r.id for r in window.recent(T, 1201)] == [2, 1, 3, 4]


def test_median_score_attributes() -> None:
    chosen = ls(9, 18.5, step=0.7, attributes='{"leap":1,"error":"RATE","x":5}')
    out = median_score(ls(12, 3.0, server=200), chosen, scorer_id=2001, ss_id=45)
    assert out.attributes == '{"leap":1,"error":"RATE","from_ls_id":12,"from_ss_id":45}'
    assert (out.score, out.step, out.offset, out.rtt, out.server_id, out.monitor_id) == (
        18.5,
        0.7,
        None,
        None,
        200,
        2001,
    )


def test_plan_loads_groups_nearby_servers_and_splits_far_ones() -> None:
    rows = [ls(i, server=i, ts=T + timedelta(seconds=i)) for i in range(1, 1100)]
    rows.append(ls(5000, server=5000, ts=T - timedelta(hours=4)))
    loads = plan_loads(rows)
    assert loads[0].server_ids == (5000,)
    assert sum(len(x.server_ids) for x in loads) == 1100
    assert all(len(x.server_ids) <= MAX_SERVERS_PER_LOAD for x in loads)
    for load in loads:
        for sid in load.server_ids:
            t = T - timedelta(hours=4) if sid == 5000 else T + timedelta(seconds=sid)
            assert load.first_ts <= t <= load.last_ts


# --- every -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "previous", "step", "expected"),
    [
        (None, -5.0, 1.0, -3.75),
        (3.0, 10.0, -2.0, 7.5),  # exactly 3 s is not beyond
        (3.000000001, 10.0, -2.0, -20.0),
        (-5.0, 10.0, -4.0, -20.0),
        (5.0, -30.0, -4.0, -20.0),  # an override, it can raise a lower score (SQ10)
    ],
)
def test_every(offset: float | None, previous: float, step: float, expected: float) -> None:
    out = every_score(
        ls(1, 3.0, step=step, offset=offset, rtt=7, attributes='{"leap":1}'),
        previous,
        scorer_id=2002,
    )
    assert out.score == pytest.approx(expected, abs=1e-12)
    assert (out.offset, out.rtt, out.attributes, out.step) == (offset, 7, '{"leap":1}', step)


def test_far_offset_non_finite() -> None:
    assert far_offset(float("inf")) and not far_offset(None)


# --- attributes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        (None, {}),
        ("null", {}),
        ("{}", {}),
        ('{"leap":1,"error":"RATE"}', {"leap": 1, "error": "RATE"}),
        ('{"Leap":2,"unknown":[1]}', {"leap": 2}),
        (
            '{"no_response":true,"warning":"w","stratum":null}',
            {"no_response": True, "warning": "w", "stratum": 0},
        ),
    ],
)
def test_decode_attributes(text: str | None, decoded: dict[str, object]) -> None:
    assert decode_attributes(text) == decoded


@pytest.mark.parametrize(
    "text",
    ["{bad", "", "[1]", '{"leap":"1"}', '{"leap":1.5}', '{"error":3}', '{"from_ls_id":true}'],
)
def test_decode_attributes_rejects(text: str) -> None:
    with pytest.raises(AttributesError):
        decode_attributes(text)
    assert issubclass(AttributesError, ScoringError)


@pytest.mark.parametrize(
    ("attrs", "encoded"),
    [
        (
            {"from_ss_id": 2, "from_ls_id": 1, "error": "E", "leap": 3},
            '{"leap":3,"error":"E","from_ls_id":1,"from_ss_id":2}',
        ),
        ({"leap": 0, "error": "", "no_response": False, "from_ls_id": 5}, '{"from_ls_id":5}'),
        (
            {"no_response": True, "stratum": 16, "warning": "w"},
            '{"stratum":16,"no_response":true,"warning":"w"}',
        ),
        ({"error": 'a<b>&c\u2028é"'}, '{"error":"a\\u003cb\\u003e\\u0026c\\u2028é\\""}'),
    ],
)
def test_encode_attributes(attrs: dict[str, object], encoded: str) -> None:
    assert encode_attributes(attrs) == encoded


# --- settings and backoff ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size", "warns"),
    [
        (None, 50, True),
        ("not json", 50, True),
        ('{"batch_size":0}', 50, False),
        ('{"batch_size":-1}', 50, False),
        ('{"batch_size":"9"}', 50, False),
        ('{"batch_size":true}', 50, False),
        ('{"other":1}', 50, False),
        ("[]", 50, False),
        ('{"batch_size":100,"x":1}', 100, False),
    ],
)
def test_batch_size_from_setting(value: str | None, size: int, warns: bool) -> None:
    got, warning = batch_size_from_setting(value)
    assert (got, warning is not None) == (size, warns)


@pytest.mark.parametrize(("initial", "maximum"), [(3.0, 60.0), (5.0, 120.0)])
def test_backoff_grows_with_jitter_and_resets(initial: float, maximum: float) -> None:
    b = Backoff(initial=initial, maximum=maximum)
    base = initial
    for _ in range(15):
        assert base * 0.5 <= b.next() <= base * 1.5
        base = min(base * 1.5, maximum)
    b.reset()
    assert initial * 0.5 <= b.next() <= initial * 1.5
