"""A loopback TCP proxy a test puts between a service and its database, then breaks.

Three modes: ``forward`` (a plain relay), ``cut`` (every connection is closed and new ones are
closed as soon as they are accepted: the database went away, the client sees a reset or EOF at
once) and ``blackhole`` (connections are accepted and kept, but nothing is forwarded either way:
a network partition, where only the client's own timeouts end the wait). :meth:`restore` goes
back to forwarding; connections that lived through a blackhole lost bytes, so they are closed.

One thread accepts; each relayed connection has one thread per direction. Everything it owns
is in the instance, so several proxies can run side by side.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import threading
from types import TracebackType

CHUNK = 65536


class Mode(enum.Enum):
    FORWARD = "forward"
    CUT = "cut"
    BLACKHOLE = "blackhole"


def _close(sock: socket.socket) -> None:
    """Shut down (waking a thread blocked in recv) and close; errors mean it is closed already."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Listens on ``127.0.0.1:<port>`` and relays to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._mode = Mode.FORWARD
        self._open: set[socket.socket] = set()  # both ends of every live connection
        self.accepted = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcpproxy", daemon=True)
        self._thread.start()

    @property
    def mode(self) -> Mode:
        return self._mode

    def cut(self) -> None:
        """Close every connection; connections accepted from now on are closed at once."""
        self._switch(Mode.CUT, close_all=True)

    def blackhole(self) -> None:
        """Stop forwarding in both directions; keep accepting and holding connections."""
        self._switch(Mode.BLACKHOLE, close_all=False)

    def restore(self) -> None:
        """Forward again; connections that saw a blackhole are closed (they lost bytes)."""
        self._switch(Mode.FORWARD, close_all=self._mode is Mode.BLACKHOLE)

    def _switch(self, mode: Mode, *, close_all: bool) -> None:
        with self._lock:
            self._mode = mode
            doomed = list(self._open) if close_all else []
            if close_all:
                self._open.clear()
        for sock in doomed:
            _close(sock)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)  # closing a socket does not wake accept(): poll stop
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            client.settimeout(None)
            self.accepted += 1
            if self._mode is Mode.CUT:
                _close(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        """Open the upstream side (also in a blackhole: the bytes are dropped, not the socket)."""
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            if self._mode is Mode.CUT:
                doomed = True
            else:
                doomed = False
                self._open.update((client, upstream))
        if doomed:
            _close(client)
            _close(upstream)
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Relay one direction until either end closes; in a blackhole read and drop."""
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if self._mode is Mode.FORWARD:
                    sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _close(source)
        _close(sink)

    def stop(self) -> None:
        """Close the listener and every connection."""
        self._stopped.set()
        _close(self._listener)
        self._switch(Mode.CUT, close_all=True)
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
