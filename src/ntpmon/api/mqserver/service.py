"""Assemble monitor-api's MQTT side and internal HTTP API; the one call ``monitor-api server``
needs is :func:`build_internal_api` followed by ``start()``/``serve()`` and ``stop()``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.applications import Starlette

from ntpmon.api.mqserver.broker import MqServer, MqServerSettings
from ntpmon.api.mqserver.clients import ClientRegistry, MonitorLoader, MonitorsConnectedGauge
from ntpmon.api.mqserver.http import build_http_app
from ntpmon.api.mqserver.router import ResponseRouter
from ntpmon.api.mqserver.traceroutes import TracerouteStore
from ntpmon.common.clock import Clock
from ntpmon.common.errors import NtpmonError
from ntpmon.db.api import get_monitors_by_tls_name
from ntpmon.db.models import Monitor
from ntpmon.mqttcm.topics import Topics

log = logging.getLogger(__name__)

DEFAULT_INTERNAL_LISTEN = "127.0.0.1:8095"


class ListenAddressError(NtpmonError, ValueError):
    """A ``host:port`` that cannot be listened on."""


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (the latter means loopback, not all addresses)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ListenAddressError(f"invalid listen address {text!r} (expected host:port)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def monitor_loader(engine: Engine) -> MonitorLoader:
    """Rows of a client's name (api.md §10.4) read through the shared query Q7."""

    def load(tls_name: str) -> Sequence[Monitor]:
        with engine.connect() as conn:
            return get_monitors_by_tls_name(conn, tls_name=tls_name)

    return load


@dataclass
class RunningHttp:
    """A uvicorn server on its own thread."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_http(app: Starlette, host: str, port: int) -> RunningHttp:
    """Start ``app`` on ``host:port`` (port 0 picks a free one); returns once listening."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="internal-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise ListenAddressError(f"cannot listen on {host}:{port}")
        thread.join(0.01)
    return RunningHttp(server, thread)


@dataclass
class InternalApi:
    """The broker connection, the client map, the router and the HTTP app, ready to start."""

    app: Starlette
    mq: MqServer
    http: RunningHttp | None = None

    def start(self, listen: str = DEFAULT_INTERNAL_LISTEN, *, connect: bool = True) -> RunningHttp:
        """Serve the HTTP API on ``listen`` and, with ``connect``, connect to the broker (in the
        background); without it the client map stays empty and every answer says so."""
        if connect:
            self.mq.start()
        host, port = parse_listen(listen)
        self.http = serve_http(self.app, host, port)
        log.info("internal API listening", extra={"host": host, "port": self.http.port})
        return self.http

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        self.mq.stop()


def build_internal_api(
    settings: MqServerSettings,
    *,
    load_monitors: MonitorLoader,
    registry: CollectorRegistry,
    clock: Clock,
    engine: Engine | None = None,
) -> InternalApi:
    """Wire everything; ``registry`` receives the ``monitors_connected`` gauge.

    With an ``engine``, traceroutes agents publish are stored (issue 17).
    """
    gauge = MonitorsConnectedGauge(registry, settings.env.value)
    clients = ClientRegistry(load_monitors, clock, gauge)
    router = ResponseRouter(Topics(settings.env, settings.topic_prefix))
    store = TracerouteStore(engine, clock) if engine is not None else None
    mq = MqServer(settings, clients, router, clock, traceroutes=store)
    return InternalApi(build_http_app(mq, clock), mq)
