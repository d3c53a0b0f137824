"""The systemd unit and defaults file say what agent.md §15 and docs/agent.md promise."""

from __future__ import annotations

from pathlib import Path

from ntpmon.agent.cli.options import load_defaults_file

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "ntppool-agent@.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_one_instance_per_environment_as_dedicated_user() -> None:
    unit = unit_settings()
    assert unit["ExecStart"] == ["/opt/ntpmon/bin/ntppool-agent --env %i monitor"]
    assert unit["User"] == ["ntpmon"]
    assert unit["StateDirectory"] == ["ntppool-agent"]
    assert unit["StateDirectoryMode"] == ["0700"]
    assert unit["EnvironmentFile"] == ["-/etc/default/ntppool-agent"]
    assert unit["Restart"] == ["always"] and unit["RestartSec"] == ["120"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert unit[hardening][0] in {"yes", "strict"}


def test_defaults_file_points_at_the_state_directory() -> None:
    environ: dict[str, str] = {}
    load_defaults_file(DEPLOY / "ntppool-agent.default", environ)
    assert environ == {"MONITOR_STATE_DIR": "/var/lib/ntppool-agent"}
