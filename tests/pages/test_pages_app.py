"""The status pages served by Starlette over seeded data, on both dialects.

Served by uvicorn on a loopback port and fetched with httpx, as a browser would: no test
client (starlette's is being moved off httpx).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ntpmon.api.pages.app import HistoryWindowError, create_pages_app, history_hours
from ntpmon.testing.asgiserver import serve_in_thread

from .conftest import Seeded

SVG_BLOCK = re.compile(r"<svg .*?</svg>", re.S)


Serve = Callable[[Any], httpx.Client]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(app)``: a client of ``app`` served on loopback until the test ends."""
    with ExitStack() as stack:

        def start(app: Any) -> httpx.Client:
            base = stack.enter_context(serve_in_thread(app))
            return stack.enter_context(httpx.Client(base_url=base, timeout=30))

        yield start


@pytest.fixture
def client(db, clock, serve: Serve) -> Callable[..., httpx.Client]:
    """``client(**options)``: the pages app over the seeded database."""
    return lambda **kw: serve(create_pages_app(db, clock=clock, **kw))


def test_servers_page_lists_scores_monitors_and_links(client, seeded: Seeded) -> None:
    http = client()
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "192.0.2.10" in page and "192.0.2.20" in page and "2001:db8::1" in page
    root = str(http.base_url).rstrip("/")
    assert f'href="{root}/servers/{seeded.good}"' in page
    assert '<td class="num good">19.5</td>' in page
    assert '<td class="num bad">-3.0</td>' in page
    assert "http://" not in page.replace(f"{root}/", "")  # no external assets
    assert "<script" not in page


def test_server_page_has_two_svg_graphs_with_a_series_per_monitor(client, seeded) -> None:
    response = client().get(f"/servers/{seeded.good}")
    assert response.status_code == 200
    charts = SVG_BLOCK.findall(response.text)
    assert len(charts) == 2
    score, offset = (ET.fromstring(c) for c in charts)
    ns = "{http://www.w3.org/2000/svg}"
    score_names = [g.get("data-name") for g in score.iter(f"{ns}g")]
    assert score_names == [
        "alpha-abc123.devel.mon.ntppool.dev",
        "bravo-def456.devel.mon.ntppool.dev",
        "score (recentmedian)",
    ]
    offset_names = [g.get("data-name") for g in offset.iter(f"{ns}g")]
    assert offset_names == score_names[:2]
    for group in offset.iter(f"{ns}g"):
        line = group.find(f"{ns}polyline")
        assert len(line.get("points").split()) == seeded.rows_per_monitor
    assert "Score, last 6 h" in response.text  # zoomed in on the 6 h of history
    assert "alpha-abc123.devel.mon.ntppool.dev" in response.text


def test_server_page_window_parameter(client, seeded) -> None:
    http = client()
    one_hour = http.get(f"/servers/{seeded.good}?hours=1")
    assert one_hour.status_code == 200
    assert "39 measurements in the last 1 h" in one_hour.text
    whole_day = http.get(f"/servers/{seeded.good}?hours=24")
    assert "Score, last 24 h" in whole_day.text
    bad = http.get(f"/servers/{seeded.good}?hours=zero")
    assert bad.status_code == 400 and "whole number" in bad.text
    too_long = http.get(f"/servers/{seeded.good}?hours=10000")
    assert too_long.status_code == 400 and "between 1 and 336" in too_long.text


def test_unknown_server_is_404_and_server_without_history_renders(client, seeded) -> None:
    http = client()
    for server_id in (seeded.v6 + 999, 2**32, 10**20):  # past the id column, SQLite's int64
        missing = http.get(f"/servers/{server_id}")
        assert missing.status_code == 404 and "no server with id" in missing.text
    empty = http.get(f"/servers/{seeded.v6}")
    assert empty.status_code == 200
    assert len(SVG_BLOCK.findall(empty.text)) == 2
    assert "0 measurements" in empty.text


def test_monitors_page_without_tracker_has_no_online_column(client, seeded) -> None:
    page = client().get("/monitors").text
    assert "alpha-abc123.devel.mon.ntppool.dev" in page
    assert "v4.1.5" in page and "30s ago" in page and "Example Org" in page
    assert "<th>Online</th>" not in page
    assert "settings-v4.system" not in page and "recentmedian" not in page


def test_monitors_page_with_tracker_shows_online_state(client, seeded) -> None:
    states = {
        "alpha-abc123.devel.mon.ntppool.dev": True,
        "bravo-def456.devel.mon.ntppool.dev": False,
    }
    page = client(online=lambda: states).get("/monitors").text
    assert "<th>Online</th>" in page
    assert page.count('class="badge online"') == 1
    assert page.count('class="badge offline"') == 1
    assert page.count('class="badge unknown"') == 1  # charlie is not tracked


def test_empty_database_pages_explain_what_to_do(client) -> None:
    http = client()
    assert "No servers yet" in http.get("/").text
    assert "No monitors yet" in http.get("/monitors").text


def test_mounted_under_a_prefix_links_stay_inside(db, clock, serve, seeded) -> None:
    outer = Starlette(routes=[Mount("/status", app=create_pages_app(db, clock=clock))])
    http = serve(outer)
    page = http.get("/status/").text
    root = str(http.base_url).rstrip("/")
    assert f'href="{root}/status/servers/{seeded.good}"' in page
    assert f'href="{root}/status/monitors"' in page


@pytest.mark.parametrize(
    ("raw", "hours"), [(None, 24), ("", 24), ("1", 1), ("48", 48), ("336", 336)]
)
def test_history_hours_accepts(raw, hours) -> None:
    assert history_hours(raw) == hours


@pytest.mark.parametrize("raw", ["0", "-1", "337", "1.5", "abc", "1e3"])
def test_history_hours_rejects(raw) -> None:
    with pytest.raises(HistoryWindowError):
        history_hours(raw)


def test_monitor_page_lists_its_servers_and_names_link_to_it(client, seeded: Seeded) -> None:
    http = client()
    root = str(http.base_url).rstrip("/")
    page = http.get(f"/monitors/{seeded.mon_a}")
    assert page.status_code == 200
    assert "Monitor alpha-abc123.devel.mon.ntppool.dev" in page.text
    assert "Example Org" in page.text and "v4.1.5" in page.text
    assert f'href="{root}/servers/{seeded.good}"' in page.text
    assert f'href="{root}/servers/{seeded.bad}"' in page.text
    monitor_link = f'href="{root}/monitors/{seeded.mon_a}"'
    assert monitor_link in http.get("/monitors").text
    assert monitor_link in http.get(f"/servers/{seeded.good}").text
    # a scorer is no agent monitor; the last two are past the id column and SQLite's int64
    for missing in (seeded.scorer, seeded.mon_v6 + 999, 2**32, 10**20):
        answer = http.get(f"/monitors/{missing}")
        assert answer.status_code == 404 and "no monitor with id" in answer.text
