"""The status pages in a real headless Chromium, served by uvicorn on a loopback port."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ntpmon.api.pages.app import create_pages_app
from ntpmon.api.pages.svg import PALETTE
from ntpmon.testing.asgiserver import serve_in_thread
from ntpmon.testing.browser import dump_dom, screenshot
from ntpmon.testing.png import decode_png

from .conftest import Seeded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.fixture
def pages_url(db, clock, seeded: Seeded):
    with serve_in_thread(create_pages_app(db, clock=clock)) as url:
        yield url


def test_pages_load_in_chromium(pages_url: str, seeded: Seeded) -> None:
    servers = dump_dom(pages_url + "/")
    assert "192.0.2.10" in servers and "<table>" in servers
    monitors = dump_dom(pages_url + "/monitors")
    assert "alpha-abc123.devel.mon.ntppool.dev" in monitors
    detail = dump_dom(f"{pages_url}/servers/{seeded.good}")
    assert detail.count("<svg") == 2
    assert detail.count("<polyline") >= 5  # scorer + two agents' scores, two agents' offsets


def test_server_page_screenshot_shows_the_graphs(
    db, pages_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "server.png"
    image = decode_png(screenshot(f"{pages_url}/servers/{seeded.good}", out))
    assert (image.width, image.height) == (1280, 900)
    assert image.distinct_colours() > 200  # text, anti-aliased lines, badges: not a blank page
    for colour in PALETTE[:2]:  # the two agents' lines, legend swatches and offset markers
        assert image.count_colour(_rgb(colour), tolerance=8) > 300
    keep = os.environ.get("NTPMON_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / f"server-page-{db.dialect.name}.png")
