"""A plain ``monitor`` command line, parsed without typer (docs/agent.md, Memory footprint).

typer, click and the pydantic that typer loads to convert values cost the long-running
``monitor`` process ~15 MB, half the memory target, for parsing a dozen words once. This parser
accepts only the unambiguous spellings of the global options and ``monitor [--once]
[--sanity-only]``, reading the same environment variables click would; anything else (help,
typos, abbreviations, values that look like options, other commands) returns ``None`` and goes
to typer, which keeps every message and exit status. tests/agent/test_lightargv.py checks it
against click's own parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ntpmon.agent.cli.globalopts import RootArgs

COMMAND = "monitor"
_VALUE_OPTIONS = {
    "-e": "env",
    "--env": "env",
    "--deploy-env": "env",
    "--state-dir": "state_dir",
    "--log-level": "log_level",
    "--ca-file": "ca_file",
    "--telemetry": "telemetry",
    "--rpc-protocol": "rpc_protocol",
    "--rpc-ca-file": "rpc_ca_file",
}
_FLAGS = {
    "--debug": ("debug", True),
    "--ipv4": ("ipv4", True),
    "--no-ipv4": ("ipv4", False),
    "--ipv6": ("ipv6", True),
    "--no-ipv6": ("ipv6", False),
}
_ENVVARS = {
    "env": "DEPLOYMENT_MODE",
    "log_level": "MONITOR_LOG_LEVEL",
    "ca_file": "MONITOR_CA_FILE",
    "telemetry": "MONITOR_TELEMETRY",
    "rpc_protocol": "MONITOR_RPC_PROTOCOL",
    "rpc_ca_file": "MONITOR_RPC_CA_FILE",
}
_COMMAND_FLAGS = {"--once": "once", "--sanity-only": "sanity_only"}


@dataclass(frozen=True, slots=True)
class MonitorArgv:
    root: RootArgs
    once: bool = False
    sanity_only: bool = False


def _global_options(argv: Sequence[str]) -> tuple[dict[str, str | bool], int] | None:
    """The options before the command and the command's index, or None when unsure."""
    values: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        name, eq, inline = argv[i].partition("=")
        if name == COMMAND and not eq:
            return values, i
        if name in _FLAGS and not eq:
            field, on = _FLAGS[name]
            values[field] = on
        elif name in _VALUE_OPTIONS and (eq == "" or name.startswith("--")):
            if not eq:
                i += 1
                if i == len(argv):
                    return None
                inline = argv[i]
            if not inline or inline.startswith("-"):
                return None
            values[_VALUE_OPTIONS[name]] = inline
        else:
            return None
        i += 1
    return None


def parse_monitor_argv(argv: Sequence[str], environ: Mapping[str, str]) -> MonitorArgv | None:
    """``argv`` (global options already hoisted in front) as a monitor run, or None."""
    found = _global_options(argv)
    if found is None:
        return None
    values, at = found
    command: dict[str, bool] = {}
    for arg in argv[at + 1 :]:
        if arg not in _COMMAND_FLAGS:
            return None
        command[_COMMAND_FLAGS[arg]] = True
    for field, var in _ENVVARS.items():
        if field not in values and environ.get(var):
            values[field] = environ[var]
    return MonitorArgv(RootArgs(**values), **command)  # type: ignore[arg-type]
