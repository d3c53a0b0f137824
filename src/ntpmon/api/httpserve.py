"""uvicorn behind a :class:`~ntpmon.api.connections.ConnectionGate`: the HTTP listeners of
``monitor-api`` (management over TLS, health + status pages, metrics).

uvicorn has no setting for the TLS handshake timeout (asyncio's default is 60 s) and counts a
connection only once its handshake is done, so its ``limit_concurrency`` cannot bound
half-open connections. :class:`GatedServer` lets uvicorn do everything else (lifespan, graceful
shutdown, its HTTP protocol) but accepts the connections itself, through the gate.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from ntpmon.api.connections import ConnectionGate, ConnectionLimits


def gated_config(app: object, limits: ConnectionLimits, grace: float, **tls: str) -> uvicorn.Config:
    """A uvicorn configuration with the listener's limits; ``tls``: ``ssl_certfile``/``keyfile``.

    ``limit_concurrency`` answers 503 once that many connections or requests are open; the gate
    already refuses connections past the cap, so here it bounds requests whose client left.
    """
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",  # an upgrade would take the connection away from the gate's count
        limit_concurrency=limits.max_connections + 1,
        timeout_keep_alive=max(1, round(limits.idle_timeout)),
        timeout_graceful_shutdown=int(grace),
        **tls,  # type: ignore[arg-type]
    )


class GatedServer(uvicorn.Server):
    """A uvicorn server on one bound socket; connections pass the gate (TLS there, if any)."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, limits: ConnectionLimits):
        super().__init__(config)
        self._sock = sock
        self.limits = limits
        self.gate: ConnectionGate | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # lifespan and state; no listener of its own
        config = self.config

        def engine() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        self.gate = ConnectionGate(engine, self.limits, config.ssl)
        server = await asyncio.get_running_loop().create_server(
            self.gate, sock=self._sock, backlog=config.backlog
        )
        self.servers.append(server)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gate is not None:
            self.gate.close_all()
        await super().shutdown(sockets)
