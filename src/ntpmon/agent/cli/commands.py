"""``ntppool-agent``'s typer commands: every command, ``--help`` and usage errors.

``ntpmon.agent.cli.main.main`` runs a plain ``monitor`` command line without loading this module
(typer, click and pydantic cost the long-running process ~15 MB); everything else comes here.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from ntpmon.agent.cli import options as opts
from ntpmon.agent.cli.globalopts import Globals, RootArgs, apply_root, open_app_config
from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.config.depenv import api_host
from ntpmon.agent.transport import DEFAULT_PROTOCOL
from ntpmon.common.version import version_line

PROG = "ntppool-agent"

app = typer.Typer(
    help="NTP Pool monitoring agent (ntpmon).", no_args_is_help=True, add_completion=False
)
api_app = typer.Typer(help="Management and monitor API diagnostics.", no_args_is_help=True)
app.add_typer(api_app, name="api")


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
            "--ca-file",
            envvar="MONITOR_CA_FILE",
            help="Trust only this CA root for the management API, and for RPC when the config "
            "carries no CA (devel/test).",
        ),
    ] = None,
    rpc_protocol: Annotated[
        str,
        typer.Option(
            "--rpc-protocol",
            envvar="MONITOR_RPC_PROTOCOL",
            help="How to call monitor-api: connect (HTTP/1.1, as the Go agent) or grpc.",
        ),
    ] = DEFAULT_PROTOCOL,
    rpc_ca_file: Annotated[
        str | None,
        typer.Option(
            "--rpc-ca-file",
            envvar="MONITOR_RPC_CA_FILE",
            help="The monitor CA to verify monitor-api with, for a pool whose config sends none.",
        ),
    ] = None,
    telemetry: Annotated[
        str,
        typer.Option(
            "--telemetry",
            envvar="MONITOR_TELEMETRY",
            help="on or off: export traces, metrics and logs over OTLP.",
        ),
    ] = "on",
) -> None:
    """NTP Pool monitoring agent (ntpmon)."""
    ctx.obj = apply_root(
        RootArgs(
            env,
            state_dir,
            log_level,
            debug,
            ipv4,
            ipv6,
            ca_file,
            telemetry,
            rpc_protocol,
            rpc_ca_file,
        ),
        ctx.invoked_subcommand,
    )


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
    from ntpmon.agent.cli.setup import SetupRequest, run_setup

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
    from ntpmon.agent.cli.monitorcmd import monitor_command

    monitor_command(ctx.obj, once=once, sanity_only=sanity_only)


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    ips: Annotated[list[str], typer.Argument(help="Server IP addresses to probe.")],
) -> None:
    """Probe NTP servers once and print offset, delay, stratum, leap and error."""
    from ntpmon.agent.cli.checkcmd import format_table, run_check

    g: Globals = ctx.obj
    open_app_config(g, with_api=False)
    knobs = opts.devel_knobs(g.env.value, os.environ)
    local = os.environ.get("MONITOR_LOCAL_IPV4") if g.env.value == "devel" else None
    cfg = CheckConfig(
        port=knobs.port,
        allow_loopback=knobs.allow_loopback,
        ip=ipaddress.ip_address(local) if local else None,
    )
    from ntpmon.ntp.kerneltime import receive_stamping_kept_on

    with receive_stamping_kept_on():
        rows = run_check(ips, cfg)
    typer.echo(format_table(rows))


@api_app.command("ok")
def api_ok_cmd(ctx: typer.Context) -> None:
    """Check the API key, certificate and both APIs."""
    from ntpmon.agent.cli.apicheck import run_api_check

    g: Globals = ctx.parent.obj if ctx.parent else ctx.obj  # type: ignore[union-attr]
    cfg = open_app_config(g)
    run_api_check(cfg, rpc=g.rpc, environ=os.environ)
