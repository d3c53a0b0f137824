"""Connect protocol of the monitor-API client: unary calls over HTTP/1.1, as the Go agent sends
them (connect-go; agent.md §9.2, DESIGN.md §2).

Why the standard library: a unary Connect call is one ``POST`` with a protobuf body, so
``http.client`` and ``ssl`` carry it without grpcio's C core or an HTTP stack's imports, which
keeps the agent small (docs/agent.md, Memory footprint). Why HTTP/1.1 only: that is what the Go
agent speaks, so ntpmon's agent meets every proxy and server a Go agent meets.

Connections are kept alive and reused (at most 10 idle, each for 120 s); TLS errors, refused and
reset connections and the statuses in :data:`FLUSH_STATUSES` drop them all.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from ntpmon.agent.config.certs import ClientCertificate
from ntpmon.agent.transport.base import (
    DEADLINE_EXCEEDED,
    SERVICE,
    TLS_HANDSHAKE_TIMEOUT,
    UNAVAILABLE,
    M,
    MonitorClient,
    RPCError,
)
from ntpmon.agent.transport.connecterrors import error_from_response
from ntpmon.common.version import user_agent

CONTENT_TYPE = "application/proto"
MAX_IDLE = 10
IDLE_TIMEOUT = 120.0


class ConnectMonitorClient(MonitorClient):
    """The monitor-API client over the Connect protocol; a small keep-alive connection pool."""

    protocol = "connect"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parts = urlsplit(self.base_url if "//" in self.base_url else "https://" + self.base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise RPCError(f"invalid monitor API URL {self.base_url!r} (https:// expected)")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.path_prefix = parts.path.rstrip("/")
        self._user_agent = user_agent("ntppool-agent")
        self._idle: list[tuple[http.client.HTTPSConnection, float]] = []
        self._context: ssl.SSLContext | None = None
        self._cert: ClientCertificate | None = None
        self._pool_lock = threading.Lock()

    def _ssl_context(self) -> ssl.SSLContext:
        """The TLS context for the current client certificate, rebuilt when it changes."""
        cert = self.cfg.certificate()
        with self._lock:
            if self._context is None or cert is not self._cert:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.load_verify_locations(cadata=self.roots_pem().decode("ascii", "replace"))
                cert.present_from(context)
                context.set_alpn_protocols(["http/1.1"])
                self._drop_idle()
                self._context, self._cert = context, cert
            return self._context

    def _checkout(self) -> http.client.HTTPSConnection:
        """An idle connection that is still fresh, or a new one (connected, 10 s handshake)."""
        context = self._ssl_context()
        now = time.monotonic()
        with self._pool_lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < IDLE_TIMEOUT:
                    return conn
                conn.close()
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=context, timeout=TLS_HANDSHAKE_TIMEOUT
        )
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkin(self, conn: http.client.HTTPSConnection) -> None:
        with self._pool_lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _drop_idle(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def flush(self) -> None:
        self._drop_idle()

    def headers(self, timeout: float) -> dict[str, str]:
        """The request headers of one call, as connect-go's client sends them."""
        return {
            "Content-Type": CONTENT_TYPE,
            "Connect-Protocol-Version": "1",
            "Connect-Timeout-Ms": str(int(timeout * 1000)),
            "User-Agent": self._user_agent,
            **self.request_headers(),
        }

    def _invoke(self, method: str, request: Any, response_type: type[M], timeout: float) -> M:
        path = f"{self.path_prefix}/{SERVICE}/{method}"
        body = request.SerializeToString()
        conn: http.client.HTTPSConnection | None = None
        try:
            conn = self._checkout()
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            conn.request("POST", path, body=body, headers=self.headers(timeout))
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            _close(conn)
            raise RPCError(f"no answer within {timeout:g} s", DEADLINE_EXCEEDED) from None
        except (ssl.SSLError, ConnectionError) as exc:
            # TLS, refused, reset, and a kept-alive connection the server had closed
            # (RemoteDisconnected is a ConnectionResetError)
            _close(conn)
            raise RPCError(_describe(exc), UNAVAILABLE, transport=True, flush=True) from None
        except (OSError, http.client.HTTPException) as exc:
            _close(conn)
            raise RPCError(_describe(exc), UNAVAILABLE, transport=True) from None
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        content_type = response.getheader("Content-Type", "")
        if response.status != 200:
            raise error_from_response(response.status, response.reason, content_type, data)
        if content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
            raise RPCError(f"unexpected response content type {content_type!r}", "internal")
        try:
            return response_type.FromString(data)  # type: ignore[attr-defined,no-any-return]
        except Exception as exc:  # protobuf's DecodeError
            raise RPCError(f"unmarshal {method} response: {exc}", "internal") from None


def _close(conn: http.client.HTTPSConnection | None) -> None:
    if conn is not None:
        conn.close()


def _describe(exc: BaseException) -> str:
    """A one-line reason such as ``ConnectionRefusedError: [Errno 111] Connection refused``."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
