"""``monitor-api server`` as a real process: starts, serves health, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ntpmon.testing.apiprocess import monitor_api_process

pytestmark = pytest.mark.e2e


def test_server_process_starts_serves_and_stops_on_sigterm(tmp_path):
    exe = Path(sys.executable).parent / "monitor-api"
    with monitor_api_process(f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "data") as api:
        assert set(api.ports) == {"rpc", "management", "health", "metrics", "internal"}
        health = httpx.get(f"http://127.0.0.1:{api.ports['health']}/__health", timeout=5)
        assert health.text == "ok"
        # no JWT key: no broker, but the internal API answers from an empty client map
        internal = f"http://127.0.0.1:{api.ports['internal']}"
        assert httpx.get(f"{internal}/monitors/online", timeout=5).json() == []
        check = httpx.post(f"{internal}/check/ntp/192.0.2.1", timeout=15)
        assert (check.status_code, check.json()) == (200, [])
        api.proc.send_signal(signal.SIGTERM)
        assert api.proc.wait(timeout=20) == 0
    key = tmp_path / "data" / "ca" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    root = subprocess.run(
        [str(exe), "ca", "root", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert root.stdout == (tmp_path / "data" / "ca" / "ca.pem").read_text()


def test_unknown_deployment_mode_is_one_line_and_exit_1(tmp_path):
    exe = Path(sys.executable).parent / "monitor-api"
    result = subprocess.run(
        [str(exe), "server", "--deployment-mode", "staging", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("monitor-api: error: invalid deployment environment")
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_mqtt_still_serves_the_internal_api(tmp_path):
    """api.md §10.3/§11: ``--no-mqtt`` skips the broker only; the internal API answers."""
    dsn = f"sqlite:///{tmp_path}/db.sqlite"
    with monitor_api_process(dsn, tmp_path / "data", "--no-mqtt", "--jwtkey", "k" * 48) as api:
        internal = f"http://127.0.0.1:{api.ports['internal']}"
        assert httpx.get(f"{internal}/monitors/online", timeout=5).json() == []
        assert httpx.post(f"{internal}/check/ntp/2001:db8::1?all=1", timeout=15).json() == []
        assert httpx.post(f"{internal}/check/ntp/not-an-ip", timeout=5).status_code == 400
        assert httpx.get(f"{internal}/monitors/metrics?client=x", timeout=5).status_code == 404
