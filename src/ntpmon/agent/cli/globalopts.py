"""The global options' effect (logging, environment, state directory) and the AppConfig every
command opens; shared by the typer commands and the light ``monitor`` path (agent.md §4.1).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ntpmon.agent.cli import options as opts
from ntpmon.agent.cli.journal import stderr_is_journal, use_journal_priorities
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv, api_host, parse_env
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementClient
from ntpmon.agent.daemon.otlpexport import telemetry_switch
from ntpmon.agent.transport import DEFAULT_PROTOCOL, RPCSettings, check_protocol
from ntpmon.common.logsetup import parse_level, setup_logging

log = logging.getLogger("ntppool-agent")


@dataclass(frozen=True, slots=True)
class RootArgs:
    """The global options as given (command line, then environment, then defaults)."""

    env: str = "test"
    state_dir: str | None = None
    log_level: str = "info"
    debug: bool = False
    ipv4: bool = True
    ipv6: bool = True
    ca_file: str | None = None
    telemetry: str = "on"
    rpc_protocol: str = DEFAULT_PROTOCOL
    rpc_ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class Globals:
    env: DeploymentEnv
    state_dir: Path
    ipv4: bool
    ipv6: bool
    ca_file: str | None
    debug: bool
    telemetry: bool = True
    rpc: RPCSettings = field(default_factory=RPCSettings)


def apply_root(args: RootArgs, command: str | None) -> Globals | None:
    """Set up logging, then validate the environment and state directory.

    ``None`` for ``version``, which needs neither.
    """
    level = parse_level(args.log_level)
    if args.debug or os.environ.get("MONITOR_DEBUG", "").lower() == "true":
        level = logging.DEBUG
        os.environ["MONITOR_DEBUG"] = "true"
    journal = stderr_is_journal(os.environ)
    if journal and os.environ.get("DEBUG_INVOCATION"):
        level = logging.DEBUG  # systemd asked for a debug run of this unit
    setup_logging(level)
    if journal:
        use_journal_priorities(os.environ)
    os.environ.setdefault("OTEL_SERVICE_NAME", "ntppool-agent")
    if command == "version":
        return None
    _tag_records_with_env(parse_env(args.env).value)
    return Globals(
        env=parse_env(args.env),
        state_dir=opts.resolve_state_dir(args.state_dir, os.environ),
        ipv4=args.ipv4,
        ipv6=args.ipv6,
        ca_file=args.ca_file,
        debug=args.debug,
        telemetry=telemetry_switch(args.telemetry),
        rpc=RPCSettings(check_protocol(args.rpc_protocol), args.rpc_ca_file, args.ca_file),
    )


def _tag_records_with_env(env: str) -> None:
    """Every log record carries ``env`` (agent.md §14)."""

    def add_env(record: logging.LogRecord) -> bool:
        record.env = env
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(add_env)


def open_app_config(g: Globals, *, with_api: bool = True) -> AppConfig:
    """AppConfig after its first load; a refused API key is not fatal here (§4.4)."""
    management = ManagementClient(api_host(g.env), ca_file=g.ca_file) if with_api else None
    cfg = AppConfig(
        g.env, g.state_dir, management=management, runtime_dir=os.environ.get("RUNTIME_DIRECTORY")
    )
    try:
        cfg.load()
    except AuthorizationError:
        log.warning("API key unauthorized; continuing without it")
    return cfg
