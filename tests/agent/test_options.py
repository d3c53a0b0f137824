"""Global options, the defaults file, state-directory resolution (agent.md §4.1–§4.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntpmon.agent.cli.options import (
    OptionsError,
    devel_knobs,
    hoist_global_options,
    load_defaults_file,
    resolve_state_dir,
)


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (
            None,
            {"MONITOR_STATE_DIR": "/custom/monitor/state", "STATE_DIRECTORY": "/systemd/state"},
            "/custom/monitor/state",
        ),
        (None, {"STATE_DIRECTORY": "/systemd/state"}, "/systemd/state"),
        (None, {"HOME": "/home/u"}, "/home/u/.config/ntppool-agent"),
        (None, {"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/ntppool-agent"),
        (
            "/explicit/state/dir",
            {"MONITOR_STATE_DIR": "/custom", "STATE_DIRECTORY": "/systemd/state"},
            "/explicit/state/dir",
        ),
        (None, {"MONITOR_STATE_DIR": "", "STATE_DIRECTORY": "/systemd/state"}, "/systemd/state"),
    ],
)
def test_state_dir_priority(flag: str | None, environ: dict[str, str], expected: str) -> None:
    assert resolve_state_dir(flag, environ) == Path(expected)


def test_state_dir_relative_and_tilde() -> None:
    assert resolve_state_dir("rel", {}) == Path.cwd() / "rel"
    assert resolve_state_dir("~/x", {}) == Path.home() / "x"


def test_no_config_dir_is_an_error() -> None:
    with pytest.raises(OptionsError, match="could not find config dir"):
        resolve_state_dir(None, {})


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["monitor", "-e", "test", "--state-dir", "/x"],
            ["-e", "test", "--state-dir", "/x", "monitor"],
        ),
        (
            ["--env=devel", "check", "192.0.2.1", "--no-ipv6"],
            ["--env=devel", "--no-ipv6", "check", "192.0.2.1"],
        ),
        (
            ["setup", "--hostname", "h", "-a", "7", "--debug"],
            ["--debug", "setup", "--hostname", "h", "-a", "7"],
        ),
        (["api", "ok", "--log-level", "debug"], ["--log-level", "debug", "api", "ok"]),
        (["check", "--", "--ipv4"], ["check", "--", "--ipv4"]),
    ],
)
def test_global_options_move_in_front(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected


def test_defaults_file(tmp_path: Path) -> None:
    path = tmp_path / "ntppool-agent"
    path.write_text(
        "MONITOR_STATE_DIR=/var/lib/ntppool-agent\n"
        "# COMMENTED=1\n"
        "  SPACED  =  value with spaces  \n"
        'QUOTED="kept"\n'
        "ALREADY=file\n"
        "no equals sign\n"
        "=empty key\n"
    )
    environ = {"ALREADY": "process"}
    load_defaults_file(path, environ)
    assert environ == {
        "ALREADY": "process",
        "MONITOR_STATE_DIR": "/var/lib/ntppool-agent",
        "SPACED": "value with spaces",
        "QUOTED": '"kept"',
    }
    load_defaults_file(tmp_path / "missing", environ)


@pytest.mark.parametrize(
    ("env", "environ", "port", "loopback"),
    [
        ("devel", {"MONITOR_NTP_PORT": "12345", "MONITOR_ALLOW_LOOPBACK": "true"}, 12345, True),
        ("test", {"MONITOR_NTP_PORT": "12345", "MONITOR_ALLOW_LOOPBACK": "true"}, 123, False),
        ("prod", {"MONITOR_ALLOW_LOOPBACK": "true"}, 123, False),
        ("devel", {}, 123, False),
    ],
)
def test_devel_knobs_only_in_devel(
    env: str, environ: dict[str, str], port: int, loopback: bool
) -> None:
    knobs = devel_knobs(env, environ)
    assert (knobs.port, knobs.allow_loopback) == (port, loopback)
