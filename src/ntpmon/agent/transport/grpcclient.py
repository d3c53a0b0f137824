"""gRPC (grpcio) protocol of the monitor-API client (agent.md §9), kept for ``--rpc-protocol grpc``.

Only this module imports grpcio, and only :func:`ntpmon.agent.transport.open_monitor_client`
imports this module, so an agent in the default Connect mode never loads grpcio. The client
certificate is the current one from AppConfig; the channel is rebuilt when it changes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc

from ntpmon.agent.config.certs import ClientCertificate
from ntpmon.agent.transport.base import UNAVAILABLE, M, MonitorClient, RPCError
from ntpmon.common.version import user_agent
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

_FLUSH_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}


def grpc_target(base_url: str) -> str:
    """``host:port`` from a base URL such as ``https://api.devel.mon.ntppool.dev``."""
    parts = urlsplit(base_url if "//" in base_url else "https://" + base_url)
    if not parts.hostname:
        raise RPCError(f"invalid monitor API URL {base_url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 443}"


def connect_code(code: grpc.StatusCode) -> str:
    """The Connect name of a gRPC status (``UNAVAILABLE`` → ``unavailable``; Connect spells
    ``canceled`` with one l)."""
    return "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()


class GrpcMonitorClient(MonitorClient):
    """The monitor-API client over grpcio; one channel shared by both workers."""

    protocol = "grpc"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target = grpc_target(self.base_url)
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.MonitorServiceStub | None = None
        self._cert: ClientCertificate | None = None

    def _get_stub(self) -> pb_grpc.MonitorServiceStub:
        cert = self.cfg.certificate()
        with self._lock:
            if self._stub is None or cert is not self._cert:
                if self._channel is not None:
                    self._channel.close()
                creds = grpc.ssl_channel_credentials(
                    root_certificates=self.roots_pem(),
                    private_key=cert.key_pem,
                    certificate_chain=cert.cert_pem,
                )
                options = [
                    ("grpc.primary_user_agent", user_agent("ntppool-agent")),
                    ("grpc.keepalive_time_ms", 120_000),
                ]
                self._channel = grpc.secure_channel(self.target, creds, options=options)
                self._stub = pb_grpc.MonitorServiceStub(self._channel)
                self._cert = cert
            return self._stub

    def flush(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None
            self._cert = None

    def _invoke(self, method: str, request: Any, response_type: type[M], timeout: float) -> M:
        call = getattr(self._get_stub(), method)
        metadata = [(k.lower(), v) for k, v in self.request_headers().items()]
        try:
            return call(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            status: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
            code = connect_code(status)
            raise RPCError(
                exc.details() or "",  # type: ignore[attr-defined]
                code,
                transport=code == UNAVAILABLE,
                flush=status in _FLUSH_CODES,
            ) from None
