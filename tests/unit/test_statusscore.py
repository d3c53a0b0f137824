"""The status-score step table (spec/scorer.md §3 and §15.1), exact doubles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ntpmon.scorer.statusscore import Measurement, legacy_zero_offset, score

T = datetime(2025, 1, 1, 12, tzinfo=UTC)
MS = 1_000_000


def m(offset_ns: int | None, **kw: object) -> Measurement:
    kw.setdefault("stratum", 2)
    return Measurement(ts=T, offset_ns=offset_ns, rtt_ns=kw.pop("rtt_ns", 10 * MS), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offset_ns", "step", "ceiling"),
    [
        (0, 1.0, None),
        (10 * MS, 1.0, None),
        (25 * MS, 1.0, None),
        (26 * MS, 0.993658, None),
        (50 * MS, 0.83365, None),
        (99 * MS, 0.5069670000000001, None),
        (100 * MS, 0.5003, None),
        (25 * MS + 1, 1.0, None),
        (101 * MS, 0.497892, None),
        (200 * MS, 0.2694, None),
        (400 * MS, -0.19220000000000004, None),
        (600 * MS, -0.6537999999999998, None),
        (749 * MS, -0.9976919999999999, None),
        (750 * MS, -0.9999999999999999, None),
        (751 * MS, -2.0, None),
        (1000 * MS, -2.0, None),
        (3000 * MS, -2.0, None),
        (3001 * MS, -4.0, -20.0),
        (-3001 * MS, -4.0, -20.0),
        (-50 * MS, 0.83365, None),
    ],
)
def test_offset_steps(offset_ns: int, step: float, ceiling: float | None) -> None:
    result = score(m(offset_ns))
    assert result.step == step
    assert result.max_score == ceiling
    assert result.attributes is None


@pytest.mark.parametrize(
    ("measurement", "step", "ceiling", "attributes"),
    [
        (m(1 * MS, no_response=True), -5.0, None, None),
        (m(None, stratum=0, error="RATE"), -3.5, None, '{"error":"RATE"}'),
        (m(None, stratum=0, error="DENY"), -10.0, -50.0, '{"error":"DENY"}'),
        (m(None, stratum=0, error="RSTR"), -10.0, -50.0, '{"error":"RSTR"}'),
        (m(1 * MS, stratum=0), -2.0, 5.0, '{"error":"unexpected stratum 0"}'),
        (
            m(None, stratum=0, error="untrusted zero offset"),
            -2.0,
            5.0,
            '{"error":"untrusted zero offset"}',
        ),
        (m(1 * MS, stratum=9), -4.0, None, None),
        (m(1 * MS, stratum=8), -4.0, None, None),
        (m(1 * MS, stratum=7), 1.0, None, None),
        (m(1 * MS, error="i/o timeout"), -4.0, None, '{"error":"i/o timeout"}'),
        (m(None), -4.0, None, None),
        (m(1 * MS, leap=1), 1.0, None, '{"leap":1}'),
        (m(1 * MS, leap=2, error="x"), -4.0, None, '{"leap":2,"error":"x"}'),
        (m(5000 * MS, stratum=9), -4.0, -20.0, None),
    ],
)
def test_rules(
    measurement: Measurement, step: float, ceiling: float | None, attributes: str | None
) -> None:
    result = score(measurement)
    assert (result.step, result.max_score, result.attributes) == (step, ceiling, attributes)


@pytest.mark.parametrize(
    ("old", "offset_ns", "expected"),
    [
        (0.0, 1 * MS, 1.0),
        (20.0, 1 * MS, 20.0),
        (-30.0, 5000 * MS, -32.5),  # already below the ceiling: unchanged by it
        (10.0, 5000 * MS, -20.0),  # 5.5 capped at -20
    ],
)
def test_accumulate(old: float, offset_ns: int, expected: float) -> None:
    assert score(m(offset_ns)).accumulate(old) == expected


def test_jump_just_above_100ms() -> None:
    assert score(m(100 * MS + 1)).step == pytest.approx(0.500199997692, abs=1e-12)


def test_stratum0_ceiling_caps_high_scores() -> None:
    assert score(m(1 * MS, stratum=0)).accumulate(20.0) == 5.0


@pytest.mark.parametrize(
    ("rtt_ns", "rtt_us"), [(None, 0), (0, 0), (1999, 1), (-1999, -1), (12_345_678, 12_345)]
)
def test_rtt_truncates_toward_zero(rtt_ns: int | None, rtt_us: int) -> None:
    assert score(Measurement(ts=T, offset_ns=0, rtt_ns=rtt_ns, stratum=2)).rtt_us == rtt_us


def test_offset_is_signed_seconds() -> None:
    assert score(m(-1_500_000_001)).offset_s == -1.500000001
    assert score(m(None, error="x")).offset_s is None


def test_legacy_zero_offset_rewrite() -> None:
    rewritten = legacy_zero_offset(Measurement(ts=T, offset_ns=0, stratum=0))
    assert rewritten.offset_ns is None and rewritten.error == "untrusted zero offset"
    untouched = Measurement(ts=T, offset_ns=0, stratum=2)
    assert legacy_zero_offset(untouched) is untouched
