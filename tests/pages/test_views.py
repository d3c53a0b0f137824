"""Pure parts of the page views: window labels, the zoom on a young server's history, score
lines that reach the current score, and a server that never answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.pages.views import (
    current_standing,
    score_series,
    server_page,
    view_start,
    window_label,
)
from ntpmon.db.pages import Assignment, HistoryPoint, ServerOverview

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "label"),
    [
        (timedelta(hours=24), "last 24 h"),
        (timedelta(hours=6, minutes=18), "last 6 h"),
        (timedelta(hours=1), "last 1 h"),
        (timedelta(minutes=59), "last 59 min"),
        (timedelta(seconds=10), "last 1 min"),
    ],
)
def test_window_label(span: timedelta, label: str) -> None:
    assert window_label(NOW - span, NOW) == label


def _point(age: timedelta) -> HistoryPoint:
    ts = (NOW - age).replace(tzinfo=None)
    return HistoryPoint(1, "monitor", ts, 1.0, 1.0, 0.001, 1000)


@pytest.mark.parametrize(
    ("first_age", "expected_start_age"),
    [
        (timedelta(minutes=10), timedelta(minutes=11)),  # at least one minute of margin
        (timedelta(hours=6), timedelta(hours=6, minutes=18)),  # 5 % of the span
        (timedelta(hours=23, minutes=59), timedelta(hours=24)),  # never beyond the window
    ],
)
def test_view_start_zooms_on_young_history(first_age, expected_start_age) -> None:
    window = NOW - timedelta(hours=24)
    assert view_start(window, [_point(first_age)], NOW) == NOW - expected_start_age


def test_view_start_without_history_is_the_window() -> None:
    window = NOW - timedelta(hours=24)
    assert view_start(window, [], NOW) == window


AGENT, SCORER = 7, 9


def point(monitor_id: int, kind: str, minutes_ago: int, score: float, offset=None, rtt=None):
    return HistoryPoint(
        monitor_id=monitor_id,
        monitor_type=kind,
        ts=NOW - timedelta(minutes=minutes_ago),
        score=score,
        step=-5.0,
        offset=offset,
        rtt=rtt,
    )


def assignment(monitor_id: int, kind: str, name: str, score: float, minutes_ago: int):
    return Assignment(
        monitor_id=monitor_id,
        tls_name=name,
        monitor_type=kind,
        monitor_status="active",
        status="active",
        score_raw=score,
        score_ts=NOW - timedelta(minutes=minutes_ago),
        constraint_violation_type=None,
        pause_reason=None,
    )


def server(score: float, minutes_ago: int) -> ServerOverview:
    return ServerOverview(
        id=1,
        ip="192.0.2.1",
        ip_version="v4",
        hostname=None,
        score_raw=score,
        score_ts=NOW - timedelta(minutes=minutes_ago),
        deletion_on=None,
        monitor_counts={},
    )


def test_score_lines_run_to_the_current_score_the_history_skipped() -> None:
    """The scorer writes no row when the score did not change; the headline score (the
    server's, from the overall scorer) and each monitor's standing end the lines."""
    history = [point(AGENT, "monitor", 2, -5.0), point(SCORER, "score", 2, -5.0)]
    assignments = [
        assignment(AGENT, "monitor", "a.devel.mon.ntppool.dev", -9.75, 1),
        assignment(SCORER, "score", "recentmedian.scores.ntp.dev", -99.0, 1),
    ]
    standing = current_standing(server(-9.75, 0), assignments)
    assert standing[SCORER] == (NOW, -9.75)  # the server's own score, not the row's copy
    names = {AGENT: "a.devel.mon.ntppool.dev", SCORER: "recentmedian.scores.ntp.dev"}
    agent, overall = score_series(history, names, {}, standing)
    assert agent.points[-1] == (NOW - timedelta(minutes=1), -9.75)
    assert overall.name == "score (recentmedian)" and overall.points[-1] == (NOW, -9.75)
    stale = {AGENT: (NOW - timedelta(minutes=5), 1.0)}  # older than the history: ignored
    (line, _) = score_series(history, names, {}, stale)
    assert line.points == [(NOW - timedelta(minutes=2), -5.0)]


def test_a_server_that_never_answered_says_why_its_offset_graph_is_empty() -> None:
    history = [point(AGENT, "monitor", m, -5.0 * m, offset=None, rtt=0) for m in (3, 2, 1)]
    assignments = [assignment(AGENT, "monitor", "a.devel.mon.ntppool.dev", -15.0, 1)]
    page = server_page(
        server(-15.0, 1),
        assignments,
        history,
        {AGENT: "a.devel.mon.ntppool.dev"},
        start=NOW - timedelta(hours=1),
        now=NOW,
        nav={},
        monitor_url=lambda i: f"/monitors/{i}",
    )
    assert "No offsets to draw: none of the 3 checks in this window got a usable answer" in page
    assert "0.00 ms" not in page
    assert '<td class="num">no answer</td><td>—</td>' in page
    assert '<a href="/monitors/7">a.devel.mon.ntppool.dev</a>' in page
