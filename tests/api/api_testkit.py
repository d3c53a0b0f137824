"""Helpers for monitor-api tests: a running mTLS server, clients with issued certificates,
seed data and a snapshot of every table to prove a refused call changed nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from sqlalchemy import Engine, select

from ntpmon.api.admission import PriorityScheduler
from ntpmon.api.ca import EmbeddedCA, IssuedCertificate
from ntpmon.api.defaults import DEFAULT_WORKERS
from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.rpc.app import RpcApp
from ntpmon.api.rpc.dispatch import CallerIdentity, Dispatcher
from ntpmon.api.rpc.listener import RpcListener, open_listener
from ntpmon.api.rpc.tlsfiles import ReloadingContext, TlsFiles
from ntpmon.api.runner import MonitorApiServer, ServerOptions
from ntpmon.api.service import MonitorService, MqttSettings
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.api.tracing import RpcTracer
from ntpmon.common.clock import FixedClock
from ntpmon.common.environments import DeployEnv
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import metadata, server_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

MONITOR_NAME = "uspao1-abc123.devel.mon.ntppool.dev"
MONITOR_IP = "192.0.2.10"
MONITOR_IP6 = "2001:db8::10"
SERVER_IPS = ("198.51.100.1", "198.51.100.2", "198.51.100.3")
SERVER_NAMES = ["localhost", "127.0.0.1"]
JWT_KEY = "t-key-for-tests-only-0123456789-0123456789-01234567"
UA = "ntppool-agent/v4.1.5/abc1234 (2026-04-28T10:00:00Z, go1.26)"


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, for "the database is unchanged" checks."""
    with engine.connect() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
        }


@dataclass
class Seed:
    account_id: int
    monitor_id: int
    monitor6_id: int
    server_ids: list[int]
    score_ids: list[int]


def seed(engine: Engine, clock: FixedClock, status: MonitorStatus = MonitorStatus.TESTING) -> Seed:
    """One account, a v4 and a v6 monitor row of one agent, three v4 servers assigned."""
    now = clock.now()
    with engine.begin() as conn:
        account = admin.create_account(conn, name="acct", now=now, id_token="acct-token")
        monitor = admin.create_monitor(
            conn, tls_name=MONITOR_NAME, ip=MONITOR_IP, now=now, account_id=account, status=status
        )
        monitor6 = admin.create_monitor(
            conn, tls_name=MONITOR_NAME, ip=MONITOR_IP6, now=now, account_id=account, status=status
        )
        servers = [admin.create_server(conn, ip=ip, now=now) for ip in SERVER_IPS]
        if status.is_live:
            admin.assign_monitor_to_servers(conn, monitor_id=monitor, now=now)
        score_ids = [
            conn.execute(
                select(server_scores.c.id).where(
                    server_scores.c.server_id == sid, server_scores.c.monitor_id == monitor
                )
            ).scalar()
            for sid in servers
        ]
    return Seed(account, monitor, monitor6, servers, score_ids)


@dataclass
class RunningApi:
    port: int
    ca: EmbeddedCA
    service: MonitorService
    metrics: ApiMetrics
    signer: TicketSigner
    listener: RpcListener
    scheduler: PriorityScheduler

    def stub(
        self,
        cert: IssuedCertificate | None,
        *,
        trust: str | None = None,
        user_agent: str = UA,
    ) -> tuple[grpc.Channel, pb_grpc.MonitorServiceStub]:
        creds = grpc.ssl_channel_credentials(
            root_certificates=(trust or self.ca.root_pem()).encode(),
            private_key=cert.key_pem.encode() if cert else None,
            certificate_chain=cert.cert_pem.encode() if cert else None,
        )
        channel = grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            creds,
            options=[("grpc.primary_user_agent", user_agent)],
        )
        return channel, pb_grpc.MonitorServiceStub(channel)

    def client_cert(self, name: str = MONITOR_NAME) -> IssuedCertificate:
        return self.ca.issue_client(name, timedelta(hours=1))

    def rpc_count(self, method: str, code: str) -> float:
        """Calls of ``method`` that ``monitorapi_rpc_duration_seconds`` counted under ``code``."""
        value = self.metrics.registry.get_sample_value(
            "monitorapi_rpc_duration_seconds_count", {"method": method, "code": code}
        )
        return value or 0.0


def server_tls(ca: EmbeddedCA, directory: Path) -> TlsFiles:
    """A server certificate for the loopback names, written to ``directory``, trusting ``ca``."""
    issued = ca.issue_server(SERVER_NAMES, timedelta(hours=1))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_text(issued.cert_pem)
    (directory / "tls.key").write_text(issued.key_pem)
    return TlsFiles(directory / "tls.crt", directory / "tls.key", client_ca_pem=ca.root_pem())


class RpcServer:
    """An RPC listener on a free loopback port serving ``service`` as ``monitor-api`` does
    (handlers on a priority scheduler); :meth:`stop` ends it and removes its TLS files."""

    def __init__(
        self,
        service: MonitorService,
        metrics: ApiMetrics,
        ca: EmbeddedCA,
        *,
        tracer: RpcTracer | None = None,
        threads: int = DEFAULT_WORKERS,
    ) -> None:
        self._tls_dir = tempfile.TemporaryDirectory(prefix="ntpmon-rpc-tls-")
        self.tls_files = server_tls(ca, Path(self._tls_dir.name))
        self.scheduler = PriorityScheduler(threads, observe=metrics.queued)
        dispatcher = Dispatcher(service, metrics, tracer or RpcTracer(), CallerIdentity())
        self.listener = open_listener(
            RpcApp(dispatcher, self.scheduler), ReloadingContext(self.tls_files), "127.0.0.1:0"
        )
        self.port = self.listener.port

    def stop(self, grace: float = 1) -> None:
        self.listener.stop(grace)
        self.scheduler.shutdown(wait=False)
        self._tls_dir.cleanup()


@contextmanager
def running_api(
    engine: Engine,
    clock: FixedClock,
    ca: EmbeddedCA,
    *,
    threads: int = DEFAULT_WORKERS,
    service_class: type[MonitorService] = MonitorService,
) -> Iterator[RunningApi]:
    """An in-process server on a free loopback port with keyring ``1:k1``, its handlers on a
    priority scheduler of ``threads`` threads as in ``monitor-api server``."""
    metrics = ApiMetrics()
    signer = TicketSigner(StaticKeyring({1: b"k1"}))
    service = service_class(engine, signer, clock, metrics, mqtt=MqttSettings(jwt_key=JWT_KEY))
    server = RpcServer(service, metrics, ca, threads=threads)
    try:
        yield RunningApi(
            server.port, ca, service, metrics, signer, server.listener, server.scheduler
        )
    finally:
        server.stop()


def loopback_options(
    engine: Engine, data_dir: Path, env: DeployEnv = DeployEnv.DEVEL, **extra: object
) -> ServerOptions:
    """``monitor-api server`` options with every listener on a free loopback port."""
    loopback = "127.0.0.1:0"
    return ServerOptions(
        engine=engine,
        data_dir=data_dir,
        env=env,
        listen=loopback,
        management_listen=loopback,
        health_listen=loopback,
        metrics_listen=loopback,
        grace=2,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def serving(options: ServerOptions) -> Iterator[MonitorApiServer]:
    """A started ``monitor-api server`` (every listener on loopback), stopped afterwards."""
    server = MonitorApiServer(options)
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


def status_for(server: pb.Server, offset_ms: float = 1.0, **kw: object) -> pb.ServerStatus:
    """A good result for a handed-out server (the ticket echoed back)."""
    st = pb.ServerStatus(ticket=server.ticket, ip_bytes=server.ip_bytes, stratum=2, **kw)
    st.offset.FromNanoseconds(int(offset_ms * 1e6))
    st.rtt.FromNanoseconds(12_345_678)
    return st
