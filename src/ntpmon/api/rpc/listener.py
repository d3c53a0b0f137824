"""The RPC port: HTTP/1.1 and HTTP/2 over TLS (hypercorn's protocol engines) on its own loop.

Why hypercorn's pieces and not its ``serve()``: the service needs the verified client
certificate of each connection, which no ASGI server puts in the scope. Accepting the
connections here (through a :class:`ConnectionGate`, which caps them from accept and times
out the TLS handshake with the reloading context) and handing each
to a hypercorn ``TCPServer`` whose connection state carries the peer certificate gives the
application ``scope["state"]["peer_cert"]``, with ALPN choosing HTTP/2 or HTTP/1.1 per
connection. The socket is bound by the caller's rules (``SO_REUSEPORT`` for ``--processes``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from dataclasses import dataclass

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config

from ntpmon.api.connections import ConnectionGate, ConnectionLimits
from ntpmon.api.rpc.app import RpcApp
from ntpmon.api.rpc.badrequests import tame

log = logging.getLogger(__name__)

BACKLOG = 1024  # connections the kernel queues while the loop is busy


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """Limits of the port: TLS handshake, idle keep-alive connections (Go agents keep theirs
    for 120 s and reconnect transparently), how many streams one HTTP/2 connection runs, and
    how many connections are open at once, handshaking ones included (one per agent)."""

    handshake_timeout: float = 10.0
    keep_alive_timeout: float = 75.0
    h2_max_concurrent_streams: int = 100
    max_connections: int = 1024

    def connections(self) -> ConnectionLimits:
        return ConnectionLimits(
            self.max_connections, self.handshake_timeout, idle_timeout=self.keep_alive_timeout
        )


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (the RPC port and monitor-api's HTTP ports); ``reuse_port`` lets
    worker processes share the port.

    The protocol is named (``IPPROTO_TCP``, not 0) because asyncio only turns Nagle off on
    accepted sockets whose ``proto`` says TCP: with ``proto`` 0 every response written in two
    parts (headers, then body) waited for the client's delayed ACK, ~40 ms per call.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _hypercorn_config(limits: ListenerLimits) -> Config:
    config = Config()
    config.keep_alive_timeout = limits.keep_alive_timeout
    config.h2_max_concurrent_streams = limits.h2_max_concurrent_streams
    config.include_server_header = False
    config.accesslog = None  # the dispatcher writes the access log, with the monitor in it
    # one WARNING line per error, no traceback, rate-limited (a peer must not fill the disk)
    config.errorlog = tame(logging.getLogger("ntpmon.api.rpc.http"))
    return config


class RpcListener:
    """A started RPC port; :meth:`stop` lets calls in flight finish within the grace period."""

    def __init__(
        self,
        app: RpcApp,
        tls: ssl.SSLContext,
        sock: socket.socket,
        limits: ListenerLimits | None = None,
    ) -> None:
        self._app = ASGIWrapper(app)
        self._tls = tls
        self._sock = sock
        self._limits = limits or ListenerLimits()
        self._config = _hypercorn_config(self._limits)
        self.port: int = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._context: WorkerContext | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stop_requested: asyncio.Event | None = None
        self._grace = 0.0
        self._stopped = threading.Event()
        ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="rpc-listener", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # start-up failure: reported to the constructor
            self._error = exc
            ready.set()
        finally:
            self._loop.close()
            self._stopped.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._context = WorkerContext(None)
        self._stop_requested = asyncio.Event()
        gate = ConnectionGate(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._connection),
            self._limits.connections(),
            self._tls,
        )
        server = await self._loop.create_server(gate, sock=self._sock)
        ready.set()
        await self._stop_requested.wait()
        server.close()
        gate.close_all()
        await self._context.terminated.set()  # keep-alive connections close after their call
        if self._connections:
            _, pending = await asyncio.wait(self._connections, timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._context is not None
        self._connections.add(task)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            state = {"peer_cert": peer_cert}
            await TCPServer(
                self._app, self._loop, self._config, self._context, state, reader, writer
            )
        finally:
            self._connections.discard(task)

    def shutdown(self, grace: float) -> threading.Event:
        """Refuse new connections; the event is set once running calls finished (or ``grace``)."""
        self._grace = grace
        if not self._stopped.is_set() and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        return self._stopped

    def stop(self, grace: float) -> None:
        """Refuse new calls, wait up to ``grace`` seconds for running ones, then close."""
        self.shutdown(grace).wait()


def split_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → (host, port); an empty host means all."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {address!r} must be host:port")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)  # noqa: S104 - ":port" means all, as upstream


def open_listener(
    app: RpcApp,
    tls: ssl.SSLContext,
    address: str,
    *,
    reuse_port: bool = False,
    limits: ListenerLimits | None = None,
) -> RpcListener:
    """Bind ``address`` and serve ``app`` on it."""
    host, port = split_address(address)
    return RpcListener(app, tls, bind_socket(host, port, reuse_port=reuse_port), limits)
