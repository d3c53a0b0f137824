"""The light ``monitor`` parser agrees with click's parse of the typer app, and hands every
other command line to typer (docs/agent.md, Memory footprint)."""

from __future__ import annotations

import pytest
import typer.main

from ntpmon.agent.cli.commands import app
from ntpmon.agent.cli.globalopts import RootArgs
from ntpmon.agent.cli.lightargv import MonitorArgv, parse_monitor_argv
from ntpmon.agent.cli.options import hoist_global_options

ENVVARS = ("DEPLOYMENT_MODE", "MONITOR_LOG_LEVEL", "MONITOR_CA_FILE", "MONITOR_TELEMETRY")


def click_parse(argv: list[str]) -> MonitorArgv:
    """What typer/click make of ``argv``: root options, then the monitor command's."""
    root = typer.main.get_command(app)
    ctx = root.make_context("ntppool-agent", list(argv))
    name, *rest = [*ctx._protected_args, *ctx.args]  # typer vendors click 8.2
    assert name == "monitor"
    command = root.get_command(ctx, name)  # type: ignore[attr-defined]
    sub = command.make_context(name, rest, parent=ctx)
    return MonitorArgv(RootArgs(**ctx.params), **sub.params)


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["monitor"], {}),
        (["monitor", "--once"], {}),
        (["monitor", "--sanity-only", "--once"], {}),
        (["-e", "devel", "--state-dir", "/var/lib/x", "monitor"], {}),
        (["monitor", "--env=prod", "--no-ipv6", "--debug"], {}),
        (["monitor", "--deploy-env", "test", "--log-level=warn", "--ca-file", "/ca.pem"], {}),
        (["--no-ipv4", "--ipv4", "--ipv6", "monitor"], {}),  # the last flag wins
        (["-e", "test", "-e", "devel", "monitor"], {}),  # the last value wins
        (["monitor"], {"DEPLOYMENT_MODE": "devel", "MONITOR_LOG_LEVEL": "debug"}),
        (["monitor"], {"MONITOR_CA_FILE": "/etc/ca.pem"}),
        (["monitor", "--telemetry", "off"], {}),
        (["--telemetry=on", "monitor"], {"MONITOR_TELEMETRY": "off"}),
        (["monitor"], {"MONITOR_TELEMETRY": "off"}),
        (["-e", "prod", "monitor"], {"DEPLOYMENT_MODE": "devel"}),  # the option beats the env
        (["--log-level", "error", "monitor"], {"MONITOR_LOG_LEVEL": "debug"}),
        (["monitor"], {"DEPLOYMENT_MODE": "", "MONITOR_LOG_LEVEL": ""}),  # empty is unset
        (["--env", "staging", "monitor"], {}),  # invalid values are apply_root's to refuse
        (["--state-dir", "monitor", "monitor", "--once"], {}),
    ],
)
def test_same_parse_as_click(
    argv: list[str], environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ENVVARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    hoisted = hoist_global_options(argv)
    light = parse_monitor_argv(hoisted, environ)
    assert light is not None
    assert light == click_parse(hoisted)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["monitor", "--help"],
        ["monitor", "--once", "extra"],
        ["monitor", "--"],
        ["version"],
        ["check", "127.0.0.1"],
        ["api", "ok"],
        ["-edevel", "monitor"],  # click's joined short option
        ["-e=devel", "monitor"],
        ["--env", "monitor"],  # the command was taken as the value
        ["--env", "--debug", "monitor"],
        ["--env=", "monitor"],
        ["--debug=true", "monitor"],
        ["--deploy", "devel", "monitor"],  # not an option name
        ["monitor", "--onc"],
        ["monitor", "--once=1"],
        ["--state-dir"],
    ],
)
def test_everything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse_monitor_argv(hoist_global_options(argv), {}) is None
