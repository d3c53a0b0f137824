"""``monitor-api``: the gRPC service, management API and admin commands."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ntpmon.api.admin_cli import build_admin_app
from ntpmon.api.ca import CAError, EmbeddedCA
from ntpmon.api.defaults import DEFAULT_WORKERS
from ntpmon.common.cli import entry_point
from ntpmon.common.dbcli import DsnOption, build_db_app
from ntpmon.common.environments import DeployEnv, parse_env
from ntpmon.common.errors import NtpmonError
from ntpmon.common.logsetup import setup_logging
from ntpmon.common.version import version_line

if TYPE_CHECKING:
    from ntpmon.api.mqserver.wiring import MqttServerOptions
    from ntpmon.api.vault import VaultSettings

DEFAULT_DATA_DIR = "./var/monitor-api"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MANAGEMENT_CONNECTIONS = 4  # pool overflow beyond one connection per gRPC handler thread

app = typer.Typer(
    help="NTP Pool monitor API server (ntpmon).", no_args_is_help=True, add_completion=False
)
db_app = build_db_app()
app.add_typer(db_app, name="db")
app.add_typer(build_admin_app(), name="admin")
ca_app = typer.Typer(help="The embedded monitor CA.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")

DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", envvar="MONITOR_API_DATA_DIR", help="CA, server cert, keys"),
]
TicketKeysOption = Annotated[
    str,
    typer.Option(
        "--ticket-keys",
        envvar="MONITOR_API_TICKET_KEYS",
        help="where the ticket-signing keys live: file (data dir; MONITOR_TICKET_KEYS wins) or "
        "vault (KV v2 kv/ntppool/<env>/monitor-tokens)",
    ),
]
CaOption = Annotated[
    str,
    typer.Option(
        "--ca",
        envvar="MONITOR_API_CA",
        help="who issues certificates: embedded (CA in the data dir) or vault (PKI "
        "pki_servers/issue/monitors-<env>)",
    ),
]
EnvOption = Annotated[
    str,
    typer.Option("--deployment-mode", envvar="DEPLOYMENT_MODE", help="devel, test or prod"),
]


@app.command("version")
def version_cmd() -> None:
    """Print the program version."""
    typer.echo(version_line("monitor-api"))


@db_app.command("mon")
def db_mon(name: str, dsn: DsnOption = None) -> None:
    """Print every current monitor row named NAME with its merged config (debug aid)."""
    import dataclasses
    import json

    from ntpmon.api.monitor_config import MonitorConfigError, effective_config
    from ntpmon.db.api import get_monitors_by_tls_name, get_system_monitor_config
    from ntpmon.db.engine import open_database

    engine = open_database(dsn, wait=5.0)
    try:
        with engine.connect() as conn:
            rows = get_monitors_by_tls_name(conn, tls_name=name)
            defaults = {
                m.id: get_system_monitor_config(conn, ip_version=m.ip_version) for m in rows
            }
    finally:
        engine.dispose()
    if not rows:
        typer.echo("No monitor found")
        return
    for monitor in rows:
        try:
            merged: object = dataclasses.asdict(
                effective_config(monitor.config, defaults[monitor.id])
            )
        except MonitorConfigError as exc:
            merged = f"invalid: {exc}"
        typer.echo(
            f"{monitor.id} {monitor.tls_name} {monitor.ip_version} {monitor.ip} {monitor.status}"
        )
        typer.echo(f"  config: {json.dumps(merged, default=list)}")


def _vault_settings(ticket_keys: str, ca: str) -> VaultSettings | None:
    """Check the two choices; Vault's settings (from the environment) when either is vault."""
    from ntpmon.api.runner import CA_SOURCES, KEY_SOURCES
    from ntpmon.api.vault import VaultSettings

    if ticket_keys not in KEY_SOURCES:
        raise NtpmonError(f"--ticket-keys must be one of {', '.join(KEY_SOURCES)}")
    if ca not in CA_SOURCES:
        raise NtpmonError(f"--ca must be one of {', '.join(CA_SOURCES)}")
    if "vault" not in (ticket_keys, ca):
        return None
    return VaultSettings.from_environ()


@ca_app.command("root")
def ca_root(
    data_dir: DataDirOption = Path(DEFAULT_DATA_DIR),
    deployment_mode: EnvOption = "devel",
    ca: CaOption = "embedded",
) -> None:
    """Print the monitor CA root (PEM) that agents trust with --ca-file."""
    settings = _vault_settings("file", ca)
    if settings is not None:
        from ntpmon.api.vault import VaultPKI, VaultSession

        pki = VaultPKI(VaultSession(settings), str(parse_env(deployment_mode)))
        typer.echo(pki.root_pem(), nl=False)
        return
    ca_dir = data_dir / "ca"
    if not (ca_dir / "ca.pem").exists():
        raise CAError(f"no CA in {ca_dir} yet: start 'monitor-api server' once to create it")
    typer.echo(EmbeddedCA.load_or_create(ca_dir).root_pem(), nl=False)


def _duration(text: str) -> float:
    from ntpmon.api.godurations import parse_go_duration

    try:
        seconds = parse_go_duration(text)
    except ValueError:
        raise NtpmonError(f"invalid duration {text!r} (e.g. 720h, 30m)") from None
    if seconds <= 0:
        raise NtpmonError("durations must be positive")
    return seconds


def _multiprocess_metrics(data_dir: Path) -> None:
    """Metrics of every process summed (prometheus_client multiprocess mode).

    The variable must be set before the first metric exists, i.e. before the server modules
    are imported; workers inherit it. Files of a previous run are removed.
    """
    directory = Path(os.environ.get(METRICS_DIR_ENV) or data_dir / "metrics-multiprocess")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR_ENV] = str(directory)


def _mqtt_server_options(  # noqa: PLR0917 - one call site, the CLI flags
    env: DeployEnv,
    enabled: bool,
    host: str,
    port: int,
    jwt_key: str,
    plain: bool,
    ca_file: Path | None,
    internal_listen: str,
) -> MqttServerOptions:
    """The broker connection runs when not disabled and a JWT key is set (agents need one too);
    the internal HTTP API runs either way (api.md §10.3: ``--no-mqtt`` skips the broker only)."""
    from ntpmon.api.mqserver.wiring import MqttServerOptions

    options = MqttServerOptions(
        enabled=enabled and bool(jwt_key),
        host=host,
        port=port,
        jwt_key=jwt_key,
        plain=plain,
        ca_pem=ca_file.read_text() if ca_file else "",
        internal_listen=internal_listen,
    )
    options.check(env)
    return options


@app.command("server")
def server(  # noqa: PLR0917 - typer options
    dsn: DsnOption = None,
    data_dir: DataDirOption = Path(DEFAULT_DATA_DIR),
    deployment_mode: EnvOption = "devel",
    listen: Annotated[
        str, typer.Option(help="RPC listener: Connect, gRPC and gRPC-Web; certificate or JWT")
    ] = ":8000",
    jwt_listen: Annotated[
        str,
        typer.Option(
            envvar="MONITOR_API_JWT_LISTEN", help="a second RPC listener (old JWT port; off)"
        ),
    ] = "",
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls.cert",
            "--tls-cert",
            "--tls.crt",
            envvar="MONITOR_API_TLS_CERT",
            help="PEM certificate (chain) of the RPC listener, re-read when it changes "
            "(default: issued by the embedded CA)",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls.key", "--tls-key", envvar="MONITOR_API_TLS_KEY", help="its PEM private key"
        ),
    ] = None,
    client_ca: Annotated[
        list[Path] | None,
        typer.Option(
            "--client-ca",
            envvar="MONITOR_API_CLIENT_CA",
            help="PEM CA(s) whose client certificates identify monitors (repeatable), "
            "e.g. the pool's monitor CA",
        ),
    ] = None,
    embedded_client_ca: Annotated[
        bool,
        typer.Option(
            "--embedded-client-ca/--no-embedded-client-ca",
            help="also accept client certificates of the embedded CA",
        ),
    ] = True,
    jwt_issuer: Annotated[
        str,
        typer.Option(
            envvar="MONITOR_API_JWT_ISSUER",
            help="also accept JWTs of this issuer (e.g. https://api.ntppool.dev), verified "
            "with its JWKS",
        ),
    ] = "",
    jwks_url: Annotated[
        str, typer.Option(help="the issuer's JWKS (default <issuer>/.well-known/jwks.json)")
    ] = "",
    jwks_ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle for the JWKS fetch (default: system roots)")
    ] = None,
    management_listen: Annotated[str, typer.Option(help="management HTTPS listener")] = ":8443",
    health_listen: Annotated[str, typer.Option(help="health HTTP listener")] = ":8080",
    metrics_listen: Annotated[str, typer.Option(help="Prometheus listener")] = ":9000",
    server_name: Annotated[
        list[str] | None, typer.Option(help="extra name for the server certificate")
    ] = None,
    cert_lifetime: Annotated[str, typer.Option(help="client certificate lifetime")] = "720h",
    public_url: Annotated[
        str, typer.Option(envvar="API_HOST", help="management base URL agents use")
    ] = "",
    jwt_key: Annotated[str, typer.Option("--jwtkey", envvar="JWT_KEY", help="MQTT JWT key")] = "",
    mqtt_host: Annotated[str, typer.Option(help="MQTT broker host for agents")] = (
        "mqtt.ntppool.net"
    ),
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker port for agents")] = 1883,
    no_mqtt: Annotated[
        bool, typer.Option("--no-mqtt", envvar="MONITOR_MQTT_DISABLED", help="skip the MQTT broker")
    ] = False,
    mqtt_plain: Annotated[
        bool, typer.Option("--mqtt-plain", help="plain TCP to the broker (devel, loopback brokers)")
    ] = False,
    mqtt_ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle of the broker (default: system roots)")
    ] = None,
    internal_listen: Annotated[
        str, typer.Option(help="internal HTTP API (ad-hoc checks), no authentication")
    ] = "127.0.0.1:8095",
    grace: Annotated[float, typer.Option(help="seconds in-flight RPCs get at shutdown")] = 10.0,
    max_workers: Annotated[
        int,
        typer.Option(
            min=1, help="RPC handler threads (calls beyond them wait, SubmitResults first)"
        ),
    ] = DEFAULT_WORKERS,
    processes: Annotated[
        int, typer.Option(min=1, help="processes serving the RPC listener (SO_REUSEPORT)")
    ] = 1,
    log_level: Annotated[str, typer.Option(envvar="MONITOR_LOG_LEVEL")] = "info",
    ticket_keys: TicketKeysOption = "file",
    ca: CaOption = "embedded",
    max_connections: Annotated[
        int, typer.Option(min=1, help="RPC port: connections at once, handshaking ones included")
    ] = 1024,
    management_max_connections: Annotated[
        int, typer.Option(min=1, help="management port: connections at once")
    ] = 256,
    http_max_connections: Annotated[
        int, typer.Option(min=1, help="health/pages and metrics ports: connections at once")
    ] = 64,
    tls_handshake_timeout: Annotated[
        float, typer.Option(min=0.1, help="seconds a TLS handshake may take (RPC, management)")
    ] = 10.0,
    keep_alive_timeout: Annotated[
        float, typer.Option(min=1, help="RPC port: seconds an idle connection is kept")
    ] = 75.0,
    idle_timeout: Annotated[
        float,
        typer.Option(min=1, help="management, health, metrics: seconds an idle connection is kept"),
    ] = 30.0,
    clickhouse_dsn: Annotated[
        str,
        typer.Option(
            "--clickhouse-dsn",
            envvar="CLICKHOUSE_DSN",
            help="ClickHouse with the exported history (http://…:8123/db or chdb:///dir): "
            "server pages then reach back beyond the database's retention",
        ),
    ] = "",
) -> None:
    """Run the RPC service (Connect, gRPC, gRPC-Web), the management API, health, metrics
    and (with a JWT key) the MQTT side with its internal HTTP API until SIGTERM/SIGINT."""
    if processes > 1:  # before any module that defines metrics is imported
        _multiprocess_metrics(data_dir)
    mqtt_server = _mqtt_server_options(  # checked before anything is opened
        parse_env(deployment_mode),
        not no_mqtt,
        mqtt_host,
        mqtt_port,
        jwt_key,
        mqtt_plain,
        mqtt_ca_file,
        internal_listen,
    )
    vault = _vault_settings(ticket_keys, ca)
    from datetime import timedelta

    from ntpmon.api.connections import ConnectionLimits
    from ntpmon.api.rpc.listener import ListenerLimits
    from ntpmon.api.runner import MonitorApiServer, ServerOptions
    from ntpmon.api.service import PING_AFTER_IDLE, MqttSettings
    from ntpmon.db.engine import open_database

    setup_logging(log_level)
    env = parse_env(deployment_mode)
    if (tls_cert is None) != (tls_key is None):
        raise NtpmonError("--tls.cert and --tls.key go together")
    # one connection per RPC handler thread, plus a few for the management API
    engine = open_database(
        dsn,
        default_sqlite=data_dir / "ntpmon.sqlite",
        create=True,
        pool_size=max_workers,
        max_overflow=MANAGEMENT_CONNECTIONS,
        ping_after_idle=PING_AFTER_IDLE,
    )
    options = ServerOptions(
        engine=engine,
        data_dir=data_dir,
        env=env,
        listen=listen,
        jwt_listen=jwt_listen,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca_files=client_ca or [],
        embedded_client_ca=embedded_client_ca,
        jwt_issuer=jwt_issuer.rstrip("/"),
        jwks_url=jwks_url,
        jwks_ca_file=jwks_ca_file,
        management_listen=management_listen,
        health_listen=health_listen,
        metrics_listen=metrics_listen,
        server_names=server_name or [],
        cert_lifetime=timedelta(seconds=_duration(cert_lifetime)),
        public_url=public_url.rstrip("/"),
        mqtt=MqttSettings(host=mqtt_host, port=mqtt_port, jwt_key=jwt_key),
        mqtt_server=mqtt_server,
        grace=grace,
        max_workers=max_workers,
        processes=processes,
        dsn=dsn,
        log_level=log_level,
        ticket_keys=ticket_keys,
        ca=ca,
        vault=vault,
        rpc_limits=ListenerLimits(
            handshake_timeout=tls_handshake_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_connections=max_connections,
        ),
        management_limits=ConnectionLimits(
            management_max_connections, tls_handshake_timeout, idle_timeout
        ),
        http_limits=ConnectionLimits(http_max_connections, tls_handshake_timeout, idle_timeout),
        clickhouse_dsn=clickhouse_dsn,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    running = MonitorApiServer(options)
    running.wait_ready()
    typer.echo(
        "monitor-api ready: "
        + " ".join(f"{name}={port}" for name, port in sorted(running.ports.items())),
        err=True,
    )
    stop.wait()
    running.stop()
    engine.dispose()


main = entry_point(app, "monitor-api")
