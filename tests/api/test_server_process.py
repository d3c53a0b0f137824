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
        assert set(api.ports) == {"rpc", "management", "health", "metrics"}
        health = httpx.get(f"http://127.0.0.1:{api.ports['health']}/__health", timeout=5)
        assert health.text == "ok"
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
