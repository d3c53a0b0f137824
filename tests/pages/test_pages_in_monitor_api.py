"""The status pages as ``monitor-api server`` serves them: on the health listener, beside
``/__health``, from a real process on both dialects."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from ntpmon.testing.apiprocess import monitor_api_process

from .conftest import Seeded

pytestmark = pytest.mark.e2e


def test_monitor_api_serves_the_pages_on_its_health_listener(
    db: Engine, seeded: Seeded, tmp_path: Path
) -> None:
    dsn = db.url.render_as_string(hide_password=False)
    with monitor_api_process(dsn, tmp_path / "data") as api:
        ports = api.ports
        base = f"http://127.0.0.1:{ports['health']}"
        assert httpx.get(f"{base}/__health", timeout=5).text == "ok"
        servers = httpx.get(f"{base}/", timeout=10)
        assert servers.status_code == 200 and "192.0.2.10" in servers.text
        assert f'href="{base}/servers/{seeded.good}"' in servers.text
        detail = httpx.get(f"{base}/servers/{seeded.good}?hours=336", timeout=10)
        assert detail.status_code == 200 and detail.text.count("<svg") == 2
        monitors = httpx.get(f"{base}/monitors", timeout=10)
        assert "alpha-abc123.devel.mon.ntppool.dev" in monitors.text
        metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/", timeout=5)
        assert metrics.status_code == 404  # the pages are on the health listener only


def test_online_by_name_maps_every_name_of_an_agent() -> None:
    from ntpmon.api.mqserver.clients import ClientState
    from ntpmon.api.runner import online_by_name

    states = [
        ClientState(key="alpha.devel.mon.ntppool.dev", online=True),
        ClientState(key="bravo-key", name="bravo.devel.mon.ntppool.dev", online=False),
    ]
    assert online_by_name(states) == {
        "alpha.devel.mon.ntppool.dev": True,
        "bravo-key": False,
        "bravo.devel.mon.ntppool.dev": False,
    }
    assert online_by_name([]) == {}
