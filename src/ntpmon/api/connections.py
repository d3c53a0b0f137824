"""A cap on a listener's connections, counted from TCP accept, and TLS handshakes in seconds.

Why not ``create_server(ssl=...)``: asyncio calls the application only once the handshake is
done, so neither uvicorn nor hypercorn sees (or counts) a connection that never finishes it,
and each such connection holds a TLS buffer (~300 KB) for asyncio's default 60 s. Here the
listening socket is served plain; :class:`ConnectionGate` counts each connection at accept,
runs the handshake itself (``loop.start_tls`` with :attr:`ConnectionLimits.handshake_timeout`)
and only then hands the connection to the HTTP engine's protocol.

At the cap, the connection that has been handshaking longest is closed to make room (a real
client finishes its handshake in milliseconds, so a flood of half-open connections only
evicts itself and legitimate clients keep being served); when every connection is
established, the newest is refused. A connection that sends nothing at all within
:attr:`ConnectionLimits.idle_timeout` after the handshake is closed too (the engines' own
keep-alive timeouts start only after a first request).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """One listener's limits: connections at once (handshaking ones included), seconds a TLS
    handshake may take, seconds an established connection may stay silent before it speaks."""

    max_connections: int = 256
    handshake_timeout: float = 10.0
    idle_timeout: float = 75.0


ProtocolFactory = Callable[[], asyncio.Protocol]


class ConnectionGate:
    """The protocol factory of a plain ``loop.create_server``; TLS (if any) happens here."""

    def __init__(
        self,
        protocol_factory: ProtocolFactory,
        limits: ConnectionLimits,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._factory = protocol_factory
        self.limits = limits
        self._tls = tls
        self._handshaking: dict[_Admission, None] = {}  # insertion order: oldest first
        self._established: set[_Admission] = set()
        self.evicted = 0  # connections closed to keep within the cap

    @property
    def open_connections(self) -> int:
        return len(self._handshaking) + len(self._established)

    def __call__(self) -> asyncio.Protocol:
        return _Admission(self)

    def _admit(self, admission: _Admission) -> bool:
        """Make room for a new connection; False when it is to be refused."""
        if self.open_connections >= self.limits.max_connections:
            if not self._handshaking:
                self.evicted += 1
                return False
            oldest = next(iter(self._handshaking))
            self._release(oldest)
            oldest.abort()
            self.evicted += 1
        self._handshaking[admission] = None
        return True

    def _established_now(self, admission: _Admission) -> None:
        self._handshaking.pop(admission, None)
        self._established.add(admission)

    def _release(self, admission: _Admission) -> None:
        self._handshaking.pop(admission, None)
        self._established.discard(admission)

    def close_all(self) -> None:
        """Abort the connections still handshaking (at shutdown; established ones are the
        HTTP engine's to close gracefully)."""
        for admission in list(self._handshaking):
            self._release(admission)
            admission.abort()


class _Admission(asyncio.Protocol):
    """One accepted connection until its handshake is done (then :class:`_Counted` takes it)."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._raw: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        if not self._gate._admit(self):
            transport.abort()
            return
        if self._gate._tls is None:
            self._hand_over(transport)
            return
        transport.pause_reading()  # the ClientHello is for the TLS layer, not for us
        self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate._release(self)  # closed before the handshake began

    async def _handshake(self, raw: asyncio.Transport) -> None:
        gate = self._gate
        assert gate._tls is not None
        loop = asyncio.get_running_loop()
        counted = _Counted(gate._factory(), self)
        try:
            transport = await loop.start_tls(
                raw,
                counted,
                gate._tls,
                server_side=True,
                ssl_handshake_timeout=gate.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, asyncio.CancelledError, TimeoutError) as exc:
            log.debug("TLS handshake failed", extra={"error": str(exc) or type(exc).__name__})
            gate._release(self)
            raw.abort()
            return
        self._task = None
        if transport is None:  # closed meanwhile
            gate._release(self)
            return
        counted.start(transport)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        counted = _Counted(self._gate._factory(), self)
        transport.set_protocol(counted)
        counted.start(transport)

    def established(self) -> None:
        self._gate._established_now(self)

    def release(self) -> None:
        self._gate._release(self)

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._raw is not None:
            self._raw.abort()

    @property
    def idle_timeout(self) -> float:
        return self._gate.limits.idle_timeout


class _Counted(asyncio.Protocol):
    """The HTTP engine's protocol, forwarded to, with the gate told when the connection ends
    and a close for a connection that never sends a byte.

    After a TLS handshake, asyncio may deliver the first request (or the close) before the
    handshake task resumes and calls :meth:`start`; those events wait here until then.
    """

    def __init__(self, inner: asyncio.Protocol, admission: _Admission) -> None:
        self._inner = inner
        self._admission = admission
        self._silence: asyncio.TimerHandle | None = None
        self._started = False
        self._lost = False
        self._early: list[bytes] = []
        self._early_eof = False

    def start(self, transport: asyncio.Transport) -> None:
        if self._lost:
            return
        self._started = True
        self._admission.established()
        self._silence = asyncio.get_running_loop().call_later(
            self._admission.idle_timeout, transport.close
        )
        self._inner.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)
        if self._early_eof:
            self._inner.eof_received()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Not called: :meth:`start` is, once the connection is the engine's."""

    def data_received(self, data: bytes) -> None:
        if not self._started:
            self._early.append(data)
            return
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._started:
            self._early_eof = True
            return True
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._started:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        self._admission.release()
        if self._started:
            self._inner.connection_lost(exc)
