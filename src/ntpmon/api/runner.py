"""``monitor-api server``: wires the parts together and owns their lifetimes.

One RPC listener (Connect, gRPC and gRPC-Web over TLS; a client certificate or a JWT) plus
three HTTP listeners (management over TLS, health, metrics) served by uvicorn on one asyncio
loop in a background thread. Shutdown stops the HTTP servers, then lets in-flight RPCs finish
within the grace period (each batch is one transaction, so nothing is ever half-written), then
closes the database pool and flushes traces.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ntpmon.analytics.archive import Archive
from ntpmon.api.admission import PriorityScheduler
from ntpmon.api.bodylimit import READ_ONLY_BODY_LIMIT, BodyLimit
from ntpmon.api.ca import CertificateAuthority, EmbeddedCA, IssuedCertificate
from ntpmon.api.connections import ConnectionLimits
from ntpmon.api.defaults import DEFAULT_WORKERS
from ntpmon.api.httpserve import GatedServer, gated_config
from ntpmon.api.jwks import external_tokens
from ntpmon.api.jwtauth import JwtVerifier
from ntpmon.api.management import ManagementContext, build_management_app
from ntpmon.api.metrics import ApiMetrics, exposition_registry
from ntpmon.api.mqserver.clients import ClientState
from ntpmon.api.mqserver.service import InternalApi
from ntpmon.api.mqserver.wiring import MqttServerOptions, start_internal_api
from ntpmon.api.oidc import TokenIssuer
from ntpmon.api.pages.app import create_pages_app
from ntpmon.api.rpc.app import RpcApp
from ntpmon.api.rpc.dispatch import CallerIdentity, Dispatcher, TokenVerifier
from ntpmon.api.rpc.listener import (
    ListenerLimits,
    RpcListener,
    bind_socket,
    open_listener,
    split_address,
)
from ntpmon.api.rpc.tlsfiles import ReloadingContext, TlsFiles
from ntpmon.api.rpc.workers import WorkerPool, WorkerSpec
from ntpmon.api.service import MonitorService, MqttSettings
from ntpmon.api.ticketkeys import CHECK_EVERY, RotatingKeyStore, TicketKeyError, keyring_for
from ntpmon.api.tickets import TicketSigner
from ntpmon.api.tracing import tracer_from_environment
from ntpmon.api.vault import VaultSession, VaultSettings, vault_keyring
from ntpmon.common.clock import Clock, SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.privatefile import write_private

log = logging.getLogger(__name__)

SERVER_CERT_LIFETIME = timedelta(days=90)
# agents call the management API a few times a day each; health, pages and metrics are for
# a handful of operators and scrapers
MANAGEMENT_LIMITS = ConnectionLimits(max_connections=256, handshake_timeout=10.0, idle_timeout=30.0)
HTTP_LIMITS = ConnectionLimits(max_connections=64, handshake_timeout=10.0, idle_timeout=30.0)


@dataclass
class ServerOptions:
    """Everything ``monitor-api server`` can be told (contract §1-2)."""

    engine: Engine
    data_dir: Path
    env: DeployEnv = DeployEnv.DEVEL
    listen: str = ":8000"
    jwt_listen: str = ""  # an extra RPC port (alias of the old JWT-only listener)
    tls_cert: Path | None = None  # the RPC port's certificate (default: issued by the CA)
    tls_key: Path | None = None
    client_ca_files: list[Path] = field(default_factory=list)  # CAs of monitor certificates
    embedded_client_ca: bool = True  # trust certificates of the embedded CA too
    jwt_issuer: str = ""  # an external issuer whose JWTs are accepted (e.g. the pool's website)
    jwks_url: str = ""  # its JWKS (default <issuer>/.well-known/jwks.json)
    jwks_ca_file: Path | None = None  # CA for the JWKS fetch (default: system roots)
    management_listen: str = ":8443"
    health_listen: str = ":8080"
    metrics_listen: str = ":9000"
    server_names: list[str] = field(default_factory=list)
    cert_lifetime: timedelta = timedelta(days=30)
    public_url: str = ""
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    # the internal API and (when enabled) the broker connection; None: neither (embedded uses)
    mqtt_server: MqttServerOptions | None = None
    grace: float = 10.0
    max_workers: int = DEFAULT_WORKERS  # RPC handler threads (RPCs running at once)
    clock: Clock = field(default_factory=SystemClock)
    processes: int = 1  # processes serving the RPC listener (N-1 spawned workers)
    dsn: str | None = None  # how workers reach the database (as given on the command line)
    log_level: str = "info"
    rpc_limits: ListenerLimits = field(default_factory=ListenerLimits)
    management_limits: ConnectionLimits = field(default_factory=lambda: MANAGEMENT_LIMITS)
    http_limits: ConnectionLimits = field(default_factory=lambda: HTTP_LIMITS)  # health, metrics
    ticket_keys: str = "file"  # "file" (data dir or MONITOR_TICKET_KEYS) or "vault" (KV v2)
    ca: str = "embedded"  # "embedded" (data dir) or "vault" (PKI)
    vault: VaultSettings | None = None  # needed when either of the two is "vault"
    clickhouse_dsn: str = ""  # exported history for the status pages (off: "")


KEY_SOURCES = ("file", "vault")
CA_SOURCES = ("embedded", "vault")


def ops_app(metrics: ApiMetrics, pages: Starlette | None = None) -> tuple[Starlette, Starlette]:
    """The health and metrics applications (plain HTTP); the status pages share health's.
    None of them takes a body: more than :data:`READ_ONLY_BODY_LIMIT` bytes is answered 413."""

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def exposition(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    registry = exposition_registry(metrics)

    health_routes: list[BaseRoute] = [Route("/__health", health)]
    if pages is not None:
        health_routes.append(Mount("/", app=pages))
    bounded = [Middleware(BodyLimit, limit=READ_ONLY_BODY_LIMIT)]
    return (
        Starlette(routes=health_routes, middleware=bounded),
        Starlette(routes=[Route("/metrics", exposition)], middleware=bounded),
    )


def online_by_name(states: Iterable[ClientState]) -> dict[str, bool]:
    """``{name: online}`` under every name an agent is known by (topic key, name, tls_names)."""
    online: dict[str, bool] = {}
    for state in states:
        for name in (state.key, state.name, *(m.tls_name for m in state.monitors)):
            if name:
                online[name] = state.online
    return online


def certificate_names(env: DeployEnv, public_url: str, extra: list[str]) -> list[str]:
    """The names of the server certificate the embedded CA issues at start.

    Agents check the management and RPC certificates against the host they were told
    (``API_HOST``), so that host is always among the names: an operator who sets
    ``API_HOST=https://api.example.net:8443`` needs no ``--server-name`` for it. The first name
    stays ``api.<env>.mon.ntppool.dev``: it is the broker identity (api.md §10.3).
    """
    names = [f"api.{env}.mon.ntppool.dev", "localhost", "127.0.0.1", "::1"]
    host = urlsplit(public_url).hostname if public_url else None
    return list(dict.fromkeys([*names, *([host] if host else []), *extra]))


class MonitorApiServer:
    """A running monitor-api; ``ports`` holds the bound port of every listener."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        data_dir = options.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.vault = VaultSession(options.vault) if options.vault is not None else None
        self.ca = self._certificate_authority()
        self.metrics = ApiMetrics()
        self.tracer = tracer_from_environment(str(options.env))
        self.keyring = keyring_for(
            data_dir,
            options.clock,
            remote=(
                vault_keyring(self.vault, str(options.env), options.clock)
                if self.vault is not None and options.ticket_keys == "vault"
                else None
            ),
        )
        self.signer = TicketSigner(self.keyring)
        self._stopping = threading.Event()
        self.service = MonitorService(
            options.engine,
            self.signer,
            options.clock,
            self.metrics,
            deploy_env=options.env,
            mqtt=options.mqtt,
            tracer=self.tracer,
        )
        names = certificate_names(options.env, options.public_url, options.server_names)
        self.server_cert = self._server_certificate(names)
        sockets = {
            "management": bind_socket(*split_address(options.management_listen)),
            "health": bind_socket(*split_address(options.health_listen)),
            "metrics": bind_socket(*split_address(options.metrics_listen)),
        }
        self.ports = {name: s.getsockname()[1] for name, s in sockets.items()}
        public_url = options.public_url or f"https://localhost:{self.ports['management']}"
        self.tokens = TokenIssuer.load_or_create(data_dir / "jwt" / "signing.key", public_url)
        # one set of handler threads for every RPC port, SubmitResults first
        self.scheduler = PriorityScheduler(options.max_workers, observe=self.metrics.queued)
        self.tls_files = self._tls_files()
        self.tls_context = ReloadingContext(self.tls_files)
        self.rpc_app = RpcApp(
            Dispatcher(
                self.service,
                self.metrics,
                self.tracer,
                CallerIdentity(self._token_verifier(public_url)),
            ),
            self.scheduler,
        )
        self.rpc = open_listener(
            self.rpc_app,
            self.tls_context,
            options.listen,
            reuse_port=options.processes > 1,
            limits=options.rpc_limits,
        )
        self.ports["rpc"] = self.rpc.port
        self.rpc_listeners: list[RpcListener] = [self.rpc]
        if options.jwt_listen:
            extra = open_listener(
                self.rpc_app, self.tls_context, options.jwt_listen, limits=options.rpc_limits
            )
            self.rpc_listeners.append(extra)
            self.ports["rpc_jwt"] = extra.port
        self.workers = self._start_workers() if options.processes > 1 else None
        management = build_management_app(
            ManagementContext(
                engine=options.engine,
                ca=self.ca,
                tokens=self.tokens,
                clock=options.clock,
                env=options.env,
                base_url=public_url,
                cert_lifetime=options.cert_lifetime,
            )
        )
        self.internal: InternalApi | None = None
        pages = create_pages_app(
            options.engine,
            clock=options.clock,
            online=self._online if options.mqtt_server and options.mqtt_server.enabled else None,
            archive=Archive(options.clickhouse_dsn) if options.clickhouse_dsn else None,
        )
        health, metrics_app = ops_app(self.metrics, pages)
        cert_file, key_file = data_dir / "server" / "tls.crt", data_dir / "server" / "tls.key"
        tls_files = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
        self._uvicorn = [
            self._http(management, sockets["management"], options.management_limits, tls_files),
            self._http(health, sockets["health"], options.http_limits),
            self._http(metrics_app, sockets["metrics"], options.http_limits),
        ]
        self._thread = threading.Thread(target=self._serve_http, name="http", daemon=True)
        self._thread.start()
        self.internal = self._start_mqtt(issued_names=names)
        if self.internal is not None and self.internal.http is not None:
            self.ports["internal"] = self.internal.http.port
        if isinstance(self.keyring, RotatingKeyStore):
            threading.Thread(target=self._rotate_keys, name="ticket-keys", daemon=True).start()
        log.info("monitor-api listening", extra={f"{k}_port": v for k, v in self.ports.items()})

    def _certificate_authority(self) -> CertificateAuthority:
        """The embedded CA (data dir), or Vault PKI with ``--ca vault``."""
        if self.options.ca == "vault":
            from ntpmon.api.vault import VaultPKI

            assert self.vault is not None, "--ca vault needs Vault settings"
            return VaultPKI(self.vault, str(self.options.env))
        return EmbeddedCA.load_or_create(self.options.data_dir / "ca")

    def _online(self) -> dict[str, bool]:
        """The status pages' online column, from the MQTT client map (empty until connected)."""
        if self.internal is None:
            return {}
        return online_by_name(self.internal.mq.clients.snapshot())

    def _tls_files(self) -> TlsFiles:
        """The operator's certificate files, else the one the embedded CA issued at start."""
        options = self.options
        server_dir = options.data_dir / "server"
        cert = options.tls_cert or server_dir / "tls.crt"
        key = options.tls_key or server_dir / "tls.key"
        return TlsFiles(
            cert_file=cert,
            key_file=key,
            client_ca_files=tuple(options.client_ca_files),
            client_ca_pem=self.ca.root_pem() if options.embedded_client_ca else "",
        )

    def _token_verifier(self, public_url: str) -> TokenVerifier:
        """ntpmon's own tokens (issued by the management API) and an external issuer's."""
        options = self.options
        return external_tokens(
            JwtVerifier(self.tokens.public_key(), public_url),
            options.jwt_issuer,
            options.jwks_url,
            options.jwks_ca_file,
        )

    def _start_workers(self) -> WorkerPool:
        """The other ``processes - 1`` servers of the RPC port (:mod:`ntpmon.api.rpc.workers`)."""
        options = self.options
        host, _ = split_address(options.listen)
        spec = WorkerSpec(
            dsn=options.dsn,
            data_dir=str(options.data_dir),
            address=f"[{host}]:{self.rpc.port}",
            tls_cert=str(self.tls_files.cert_file),
            tls_key=str(self.tls_files.key_file),
            client_ca_files=[str(p) for p in self.tls_files.client_ca_files],
            client_ca_pem=self.tls_files.client_ca_pem,
            ticket_keys=options.ticket_keys,
            public_url=self.tokens.issuer,
            jwt_issuer=options.jwt_issuer,
            jwks_url=options.jwks_url,
            jwks_ca_file=str(options.jwks_ca_file or ""),
            env=str(options.env),
            max_workers=options.max_workers,
            grace=options.grace,
            log_level=options.log_level,
            mqtt_host=options.mqtt.host,
            mqtt_port=options.mqtt.port,
            jwt_key=options.mqtt.jwt_key,
            handshake_timeout=options.rpc_limits.handshake_timeout,
            keep_alive_timeout=options.rpc_limits.keep_alive_timeout,
            max_connections=options.rpc_limits.max_connections,
        )
        return WorkerPool(spec, options.processes - 1)

    def _start_mqtt(self, issued_names: list[str]) -> InternalApi | None:
        """The internal HTTP API and the broker connection (api.md §10-11), when configured.

        The server presents its own certificate to a TLS broker; its first DNS name is the
        broker identity (username, JWT subject, client id).
        """
        options = self.options.mqtt_server
        if options is None:
            return None
        directory = self.options.data_dir / "server"
        return start_internal_api(
            replace(options, cert_file=directory / "tls.crt", key_file=directory / "tls.key"),
            engine=self.options.engine,
            env=self.options.env,
            server_name=issued_names[0],
            registry=self.metrics.registry,
            clock=self.options.clock,
        )

    def _http(
        self,
        app: Starlette,
        sock: socket.socket,
        limits: ConnectionLimits,
        tls_files: dict[str, str] | None = None,
    ) -> GatedServer:
        config = gated_config(app, limits, self.options.grace, **(tls_files or {}))
        return GatedServer(config, sock, limits)

    def _server_certificate(self, names: list[str]) -> IssuedCertificate:
        """Issued by the monitor CA at every start and written where uvicorn can read it."""
        issued = self.ca.issue_server(list(dict.fromkeys(names)), SERVER_CERT_LIFETIME)
        directory = self.options.data_dir / "server"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(directory / "tls.crt", issued.cert_pem)
        write_private(directory / "tls.key", issued.key_pem)
        return issued

    def _rotate_keys(self) -> None:
        """Check the ticket keys every two hours until shutdown."""
        assert isinstance(self.keyring, RotatingKeyStore)
        while not self._stopping.wait(CHECK_EVERY.total_seconds()):
            try:
                if self.keyring.maybe_rotate():
                    log.info("ticket key rotated", extra={"version": self.keyring.newest()[0]})
            except TicketKeyError as exc:
                log.error("ticket key rotation failed", extra={"error": str(exc)})

    def _serve_http(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(server.serve() for server in self._uvicorn))

        asyncio.run(main())

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until every HTTP listener has started."""
        deadline = threading.Event()
        for server in self._uvicorn:
            waited = 0.0
            while not server.started and waited < timeout:
                deadline.wait(0.02)
                waited += 0.02

    def stop(self) -> None:
        """Graceful shutdown: HTTP first, then in-flight RPCs finish within ``grace``."""
        self._stopping.set()
        for server in self._uvicorn:
            server.should_exit = True
        if self.workers is not None:
            self.workers.terminate()
        for done in [listener.shutdown(self.options.grace) for listener in self.rpc_listeners]:
            done.wait()
        self.scheduler.shutdown(wait=False)  # its threads end once what is left has run
        if self.workers is not None:
            self.workers.wait(timeout=self.options.grace + 5)
        self._thread.join(timeout=self.options.grace + 5)
        self.tracer.shutdown()
        if self.internal is not None:
            self.internal.stop()
        log.info("monitor-api stopped")
