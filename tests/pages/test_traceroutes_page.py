"""The server page's traceroute section: the latest path per monitor and how it changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from starlette.testclient import TestClient

from ntpmon.api.pages.app import create_pages_app
from ntpmon.api.pages.views import change_markup, traceroute_section
from ntpmon.common.clock import FixedClock
from ntpmon.db import traceroutes as tr
from ntpmon.db.traceroutes import StoredTrace
from ntpmon.traceroute.result import Hop, StopReason, TraceResult

from .conftest import Seeded

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def trace(*addresses: str | None, reached: bool = True, minutes_ago: int = 0) -> TraceResult:
    hops = tuple(
        Hop(i + 1, a, (100 * (i + 1), None, None) if a else (None, None, None))
        for i, a in enumerate(addresses)
    )
    if reached:
        last = hops[-1]
        hops = (*hops[:-1], Hop(last.ttl, last.address, last.rtts_us, reached=True))
    return TraceResult(
        target=addresses[-1] or "203.0.113.5",
        port=123,
        started=NOW - timedelta(minutes=minutes_ago),
        hops=hops,
        stop=StopReason.REACHED if reached else StopReason.SILENT,
    )


def stored(monitor_id: int, name: str, result: TraceResult, reason: str = "health") -> StoredTrace:
    return StoredTrace(0, monitor_id, name, result.started, reason, result)


def test_change_markup() -> None:
    before = trace("192.0.2.1", "198.51.100.1", "203.0.113.5")
    assert "first trace" in change_markup(before, None)
    assert "same path" in change_markup(before, before)
    assert "same path" in change_markup(trace("192.0.2.1", None, "203.0.113.5"), before)
    moved = change_markup(trace("192.0.2.1", "198.51.100.9", "203.0.113.5"), before)
    assert "hop 2: 198.51.100.1 → 198.51.100.9" in moved
    lost = change_markup(trace("192.0.2.1", None, None, reached=False), before)
    assert "no longer reached" in lost


def test_section_shows_the_latest_trace_per_monitor() -> None:
    traces = [
        stored(2, "bravo", trace("192.0.2.1", None, "203.0.113.5", minutes_ago=5)),
        stored(1, "alpha", trace("192.0.2.9", "203.0.113.5", minutes_ago=10), "request"),
        stored(2, "bravo", trace("192.0.2.1", "198.51.100.1", "203.0.113.5", minutes_ago=70)),
    ]
    section = traceroute_section(traces, NOW)
    assert section.index("alpha") < section.index("bravo")  # sorted by monitor name
    assert "2 <b>203.0.113.5</b> 0.20 ms" in section  # alpha's destination at hop 2
    assert '<span class="muted">2 *</span>' in section  # bravo's gap
    assert "request" in section
    assert "first trace" in section  # alpha has one trace
    assert "same path" in section  # bravo: only a gap differs
    assert "<script" not in traceroute_section(
        [stored(1, "<script>", trace("192.0.2.1", "203.0.113.5"))], NOW
    )
    assert "No traceroutes yet" in traceroute_section([], NOW)


def test_server_page_reads_stored_traces(db: Engine, clock: FixedClock, seeded: Seeded) -> None:
    with db.begin() as conn:
        for minutes, second_hop in ((90, "198.51.100.1"), (30, "198.51.100.7")):
            result = trace("192.0.2.1", second_hop, "192.0.2.10", minutes_ago=minutes)
            tr.insert_traceroute(
                conn,
                monitor_id=seeded.mon_a,
                server_id=seeded.good,
                result=result,
                reason="health",
                now=clock.now(),
            )
        rows = tr.recent_traceroutes(conn, server_id=seeded.good)
    assert [r.result.path()[1] for r in rows] == ["198.51.100.7", "198.51.100.1"]
    page = TestClient(create_pages_app(db, clock=clock)).get(f"/servers/{seeded.good}").text
    assert "<h2>Traceroutes</h2>" in page
    assert "hop 2: 198.51.100.1 → 198.51.100.7" in page
    other = TestClient(create_pages_app(db, clock=clock)).get(f"/servers/{seeded.bad}").text
    assert "No traceroutes yet" in other
