"""Pure helpers of the page views: window labels and the zoom on a young server's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.pages.views import view_start, window_label
from ntpmon.db.pages import HistoryPoint

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
