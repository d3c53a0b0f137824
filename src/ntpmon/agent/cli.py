"""``ntppool-agent``: measures NTP servers for the NTP Pool and reports to monitor-api.

Global options may come before or after the command (upstream's parser allows both and its
own hints put them after); ``main`` moves them in front before typer parses.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ntpmon.agent import options as opts
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementClient
from ntpmon.agent.depenv import DeploymentEnv, api_host, parse_env
from ntpmon.agent.journal import stderr_is_journal, use_journal_priorities
from ntpmon.agent.scope import Scope
from ntpmon.common.cli import run_app
from ntpmon.common.logsetup import parse_level, setup_logging
from ntpmon.common.version import version_line

log = logging.getLogger("ntppool-agent")
PROG = "ntppool-agent"

app = typer.Typer(
    help="NTP Pool monitoring agent (ntpmon).", no_args_is_help=True, add_completion=False
)
api_app = typer.Typer(help="Management and monitor API diagnostics.", no_args_is_help=True)
app.add_typer(api_app, name="api")


@dataclass(frozen=True, slots=True)
class Globals:
    env: DeploymentEnv
    state_dir: Path
    ipv4: bool
    ipv6: bool
    ca_file: str | None
    debug: bool


@app.callback()
def _root(  # noqa: PLR0917 - typer maps options to parameters
    ctx: typer.Context,
    env: Annotated[
        str,
        typer.Option(
            "-e",
            "--env",
            "--deploy-env",
            envvar="DEPLOYMENT_MODE",
            help="Deployment environment: devel, test or prod.",
        ),
    ] = "test",
    state_dir: Annotated[
        str | None, typer.Option("--state-dir", help="Base state directory (see docs/agent.md).")
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="MONITOR_LOG_LEVEL",
            help="stderr level: debug, info, warn, error.",
        ),
    ] = "info",
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logging (stderr and OTLP).")
    ] = False,
    ipv4: Annotated[
        bool, typer.Option("--ipv4/--no-ipv4", help="IPv4 worker/registration.")
    ] = True,
    ipv6: Annotated[
        bool, typer.Option("--ipv6/--no-ipv6", help="IPv6 worker/registration.")
    ] = True,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file", envvar="MONITOR_CA_FILE", help="Trust only this CA root (devel/test)."
        ),
    ] = None,
) -> None:
    """NTP Pool monitoring agent (ntpmon)."""
    level = parse_level(log_level)
    if debug or os.environ.get("MONITOR_DEBUG", "").lower() == "true":
        level = logging.DEBUG
        os.environ["MONITOR_DEBUG"] = "true"
    journal = stderr_is_journal(os.environ)
    if journal and os.environ.get("DEBUG_INVOCATION"):
        level = logging.DEBUG  # systemd asked for a debug run of this unit
    setup_logging(level)
    if journal:
        use_journal_priorities(os.environ)
    os.environ.setdefault("OTEL_SERVICE_NAME", "ntppool-agent")
    if ctx.invoked_subcommand == "version":
        return
    _tag_records_with_env(parse_env(env).value)
    ctx.obj = Globals(
        env=parse_env(env),
        state_dir=opts.resolve_state_dir(state_dir, os.environ),
        ipv4=ipv4,
        ipv6=ipv6,
        ca_file=ca_file,
        debug=debug,
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


@app.command("version")
def version_cmd() -> None:
    """Print the program name and version."""
    typer.echo(version_line(PROG))


@app.command("setup")
def setup_cmd(
    ctx: typer.Context,
    hostname: Annotated[str | None, typer.Option("--hostname", help="Name to register.")] = None,
    account: Annotated[str | None, typer.Option("-a", "--account", help="Account id.")] = None,
) -> None:
    """Register this host; prints the URL where the registration is approved."""
    from ntpmon.agent.setup import SetupRequest, run_setup

    g: Globals = ctx.obj
    cfg = open_app_config(g)
    try:
        run_setup(
            cfg,
            SetupRequest(hostname, account, g.ipv4, g.ipv6),
            api_base=api_host(g.env),
            ca_file=g.ca_file,
            environ=os.environ,
            out=typer.echo,
        )
    except KeyboardInterrupt:
        typer.echo("setup aborted", err=True)
        raise typer.Exit(1) from None


@app.command("monitor")
def monitor_cmd(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One batch per IP version, then exit.")
    ] = False,
    sanity_only: Annotated[
        bool, typer.Option("--sanity-only", help="Only check the local clock, then exit.")
    ] = False,
) -> None:
    """Run the monitor: fetch work, probe servers, submit results."""
    from ntpmon.agent.mqtt import monitor_bridge
    from ntpmon.agent.runner import MonitorOptions, run_monitor

    g: Globals = ctx.obj
    cfg = open_app_config(g)
    scope = Scope()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scope.cancel())
    knobs = opts.devel_knobs(g.env.value, os.environ)
    mqtt = monitor_bridge(
        cfg, g.env.value, port=knobs.port, allow_loopback=knobs.allow_loopback, environ=os.environ
    )
    run_monitor(
        cfg,
        MonitorOptions(once, sanity_only, g.ipv4, g.ipv6, g.ca_file, knobs, debug=g.debug),
        scope,
        environ=os.environ,
        hooks=mqtt.hooks(),
        background=[mqtt.run],
    )


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    ips: Annotated[list[str], typer.Argument(help="Server IP addresses to probe.")],
) -> None:
    """Probe NTP servers once and print offset, delay, stratum, leap and error."""
    from ntpmon.agent.checkcmd import format_table, run_check

    g: Globals = ctx.obj
    open_app_config(g, with_api=False)
    knobs = opts.devel_knobs(g.env.value, os.environ)
    local = os.environ.get("MONITOR_LOCAL_IPV4") if g.env.value == "devel" else None
    cfg = CheckConfig(
        port=knobs.port,
        allow_loopback=knobs.allow_loopback,
        ip=ipaddress.ip_address(local) if local else None,
    )
    typer.echo(format_table(run_check(ips, cfg)))


@api_app.command("ok")
def api_ok_cmd(ctx: typer.Context) -> None:
    """Check the API key, certificate and both APIs."""
    from ntpmon.agent.apicheck import run_api_check

    g: Globals = ctx.parent.obj if ctx.parent else ctx.obj  # type: ignore[union-attr]
    cfg = open_app_config(g)
    run_api_check(cfg, ca_file=g.ca_file, environ=os.environ)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: defaults file, hoisted global options, one-line errors."""
    args = sys.argv[1:] if argv is None else argv
    try:
        opts.load_defaults_file(opts.DEFAULTS_FILE, os.environ)
    except opts.OptionsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_app(app, PROG, opts.hoist_global_options(args)))
