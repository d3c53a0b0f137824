"""The inline SVG charts: scales, ticks, line breaks and escaping (no I/O)."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.pages.svg import (
    LinearScale,
    Series,
    SymlogScale,
    offset_scale,
    score_scale,
    time_chart,
    time_ticks,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("values", "low", "high", "step"),
    [
        ([], -20, 20, 10),
        ([5, 19.9], -20, 20, 10),
        ([-34.2, 12], -40, 20, 10),
        ([-100, 20], -100, 20, 20),
        ([25], -20, 30, 10),
    ],
)
def test_score_scale_covers_data_and_step_range(values, low, high, step) -> None:
    scale = score_scale(values)
    assert (scale.low, scale.high, scale.step) == (low, high, step)


@pytest.mark.parametrize(
    ("value", "position"),
    [(-20, 0.0), (0, 0.5), (20, 1.0), (-50, 0.0), (99, 1.0), (10, 0.75)],
)
def test_linear_scale_positions_and_clamps(value, position) -> None:
    assert LinearScale(-20, 20, 10).position(value) == pytest.approx(position)


def test_linear_scale_ticks() -> None:
    assert LinearScale(-20, 20, 10).ticks() == [
        (-20, "-20"),
        (-10, "-10"),
        (0, "0"),
        (10, "10"),
        (20, "20"),
    ]


@pytest.mark.parametrize(
    ("values", "limit"),
    [([], 0.01), ([0.0004], 0.01), ([0.05], 0.1), ([-0.5], 1.0), ([4.0], 10.0), ([5000], 1000)],
)
def test_offset_scale_limit_is_next_power_of_ten(values, limit) -> None:
    assert offset_scale(values).limit == pytest.approx(limit)


def test_symlog_is_symmetric_monotonic_and_clamped() -> None:
    scale = SymlogScale(limit=10.0)
    assert scale.position(0) == 0.5
    assert scale.position(10.0) == pytest.approx(1.0)
    assert scale.position(-10.0) == pytest.approx(0.0)
    assert scale.position(50.0) == pytest.approx(1.0)
    samples = [-4, -0.5, -0.05, -0.001, 0, 0.0001, 0.001, 0.05, 0.5, 4]
    positions = [scale.position(v) for v in samples]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for v in samples:
        assert scale.position(v) + scale.position(-v) == pytest.approx(1.0)


def test_symlog_ticks_labelled_in_milliseconds() -> None:
    labels = [label for _, label in SymlogScale(limit=1.0).ticks()]
    assert labels == [
        "-1 s", "-100 ms", "-10 ms", "-1 ms", "0", "+1 ms", "+10 ms", "+100 ms", "+1 s",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(minutes=10), timedelta(minutes=2)),
        (timedelta(hours=1), timedelta(minutes=10)),
        (timedelta(hours=6), timedelta(hours=1)),
        (timedelta(hours=24), timedelta(hours=3)),
        (timedelta(days=14), timedelta(days=2)),
    ],
)
def test_time_ticks_are_round_and_inside(span, step) -> None:
    start = T0 + timedelta(minutes=7, seconds=13)
    ticks = time_ticks(start, start + span)
    assert 1 <= len(ticks) <= 8
    assert all(start <= t <= start + span for t in ticks)
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert all(int(t.timestamp()) % int(step.total_seconds()) == 0 for t in ticks)


def _chart(series, **kw) -> ET.Element:
    markup = time_chart(
        series, title=kw.pop("title", "t"), start=T0, end=T0 + timedelta(hours=1),
        scale=LinearScale(-20, 20, 10), **kw,
    )  # fmt: skip
    return ET.fromstring(markup)


def test_chart_is_well_formed_svg_with_one_group_per_series() -> None:
    points = [(T0 + timedelta(minutes=m), float(m % 20)) for m in range(0, 61, 5)]
    root = _chart([Series("a", points, "#1f77b4"), Series("b", points[:3], "#ff7f0e")])
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f"{SVG}g")
    assert [g.get("data-name") for g in groups] == ["a", "b"]
    line = groups[0].find(f"{SVG}polyline")
    assert line is not None and line.get("stroke") == "#1f77b4"
    assert len(line.get("points").split()) == len(points)


def test_points_map_into_the_plot_area() -> None:
    series = Series("a", [(T0, -20.0), (T0 + timedelta(hours=1), 20.0)], "#000000")
    root = _chart([series], gap=timedelta(hours=2))
    coords = root.find(f"{SVG}g/{SVG}polyline").get("points").split()
    (x0, y0), (x1, y1) = (tuple(map(float, c.split(","))) for c in coords)
    assert (x0, y0) == (64.0, 280 - 28)  # left edge, bottom of the plot
    assert (x1, y1) == (960 - 16, 28)  # right edge, top


def test_line_breaks_at_gaps_and_lone_points_become_dots() -> None:
    minutes = [0, 5, 10, 40, 45, 59]
    points = [(T0 + timedelta(minutes=m), 1.0) for m in minutes]
    root = _chart([Series("a", points, "#000000")], gap=timedelta(minutes=20))
    group = root.find(f"{SVG}g")
    lines = group.findall(f"{SVG}polyline")
    assert [len(line.get("points").split()) for line in lines] == [3, 3]
    lone = _chart([Series("a", points[:1], "#000000")]).find(f"{SVG}g")
    assert len(lone.findall(f"{SVG}circle")) == 1 and not lone.findall(f"{SVG}polyline")


def test_points_outside_the_window_are_dropped() -> None:
    points = [(T0 - timedelta(minutes=1), 0.0), (T0 + timedelta(minutes=1), 0.0)]
    root = _chart([Series("a", points, "#000000", markers=True)])
    assert len(root.findall(f"{SVG}g/{SVG}circle")) == 1


def test_names_and_title_are_escaped() -> None:
    markup = time_chart(
        [Series('<script>"x"</script>', [(T0, 0.0)], "#000000")],
        title="a & b",
        start=T0,
        end=T0 + timedelta(hours=1),
        scale=LinearScale(-20, 20, 10),
    )
    assert "<script>" not in markup
    root = ET.fromstring(markup)  # still well-formed
    assert root.find(f"{SVG}title").text == "a & b"
    assert re.search(r"&lt;script&gt;", markup)


def test_guide_line_is_dashed_at_its_value() -> None:
    root = _chart([], guide=10.0)
    dashed = [e for e in root.iter(f"{SVG}line") if e.get("stroke-dasharray")]
    assert len(dashed) == 1
    assert float(dashed[0].get("y1")) == pytest.approx(28 + 0.25 * (280 - 56))
