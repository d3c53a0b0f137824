"""``monitor-api server`` as a real process: starts, serves health, stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_server_process_starts_serves_and_stops_on_sigterm(tmp_path):
    exe = Path(sys.executable).parent / "monitor-api"
    loopback = "127.0.0.1:0"
    command = [str(exe), "server", "--database-dsn", f"sqlite:///{tmp_path}/db.sqlite"]
    command += ["--data-dir", str(tmp_path / "data"), "--grace", "2"]
    for option in ("--listen", "--management-listen", "--health-listen", "--metrics-listen"):
        command += [option, loopback]
    proc = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MONITOR_LOG_LEVEL": "warn"},
    )
    try:
        assert proc.stderr is not None
        ports: dict[str, int] = {}
        for line in proc.stderr:
            if line.startswith("monitor-api ready:"):
                ports = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
                break
        assert set(ports) == {"grpc", "management", "health", "metrics"}
        health = httpx.get(f"http://127.0.0.1:{ports['health']}/__health", timeout=5)
        assert health.text == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
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
