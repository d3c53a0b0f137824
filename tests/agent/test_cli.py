"""The agent's command line as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.unprivileged import run_agent, shared_tmp


def agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "API_HOST"))}
    environ.update(env or {})
    exe = Path(sys.executable).parent / "ntppool-agent"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=60, env=environ, check=False
    )


def test_help_and_unknown_command() -> None:
    assert agent("--help").returncode == 0
    assert agent("no-such-command").returncode != 0


def test_invalid_env_touches_nothing(tmp_path: Path) -> None:
    result = agent("--env", "staging", "--state-dir", str(tmp_path / "s"), "api", "ok")
    assert result.returncode == 1
    assert "invalid deployment environment" in result.stderr
    assert not (tmp_path / "s").exists()


def test_invalid_log_level() -> None:
    result = agent("--log-level", "loud", "version")
    assert result.returncode == 1 and "invalid log level" in result.stderr


def test_options_after_command_and_api_ok_without_key(tmp_path: Path) -> None:
    result = agent("api", "ok", "-e", "devel", "--state-dir", str(tmp_path), "--no-ipv6")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("ntppool-agent: error: no API key configured")
    state = tmp_path / "devel" / "state.json"
    assert json.loads(state.read_text())["API"]["APIKey"] == ""
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700


def test_corrupt_state_json_is_reported_and_kept(tmp_path: Path) -> None:
    env_dir = tmp_path / "devel"
    env_dir.mkdir(mode=0o755)
    content = b'{"API":{"APIKey":"test-key"'
    (env_dir / "state.json").write_bytes(content)
    for command in (["api", "ok"], ["monitor", "--once"], ["setup", "--no-ipv4", "--no-ipv6"]):
        result = agent("-e", "devel", "--state-dir", str(tmp_path), *command)
        assert result.returncode == 1, command
        assert "state.json is not valid JSON" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert (env_dir / "state.json").read_bytes() == content
        assert stat.S_IMODE(env_dir.stat().st_mode) == 0o755  # nothing changed


@pytest.mark.parametrize("mode", [0o500, 0o000])
def test_state_dir_without_permission_is_a_clear_error(mode: int) -> None:
    with shared_tmp() as base:
        env_dir = base / "devel"
        env_dir.mkdir()
        env_dir.chmod(mode)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        result = run_agent("-e", "devel", "--state-dir", str(base), "api", "ok", env=environ)
        assert result.returncode == 1
        assert "Permission denied" in result.stderr
        assert result.stderr.startswith("ntppool-agent: error: could not")
