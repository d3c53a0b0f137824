"""gRPC client of monitor-api's ``monitor.v2.MonitorService`` over mutual TLS (agent.md §9).

Trust is pinned to the monitor CA (``ca.pem`` from the config, or ``--ca-file``); the client
certificate is the current one from AppConfig, and the channel is rebuilt when it changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
from opentelemetry import propagate, trace

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.certs import ClientCertificate
from ntpmon.common.errors import NtpmonError
from ntpmon.common.version import user_agent
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

CALL_TIMEOUT = 60.0
GET_CONFIG_TIMEOUT = 35.0
_RETRY_CODES = {grpc.StatusCode.UNAVAILABLE}
_FLUSH_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
T = TypeVar("T")


class RPCError(NtpmonError):
    """A monitor-API call failed; ``code`` is the gRPC status code (None for local errors)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


def grpc_target(base_url: str) -> str:
    """``host:port`` from a base URL such as ``https://api.devel.mon.ntppool.dev``."""
    parts = urlsplit(base_url if "//" in base_url else "https://" + base_url)
    if not parts.hostname:
        raise RPCError(f"invalid monitor API URL {base_url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 443}"


class MonitorClient:
    """Thread-safe client; one channel shared by both workers."""

    def __init__(
        self,
        cfg: AppConfig,
        base_url: str,
        *,
        ca_file: str | None = None,
        timeout: float = CALL_TIMEOUT,
        on_call: Callable[[str, bool, float], None] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.cfg = cfg
        self.target = grpc_target(base_url)
        self.ca_file = ca_file
        self.timeout = timeout
        self._on_call = on_call
        self._tracer = tracer or trace.get_tracer(__name__)
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.MonitorServiceStub | None = None
        self._cert: ClientCertificate | None = None

    def _roots(self) -> bytes:
        for path in (self.cfg.ca_path, Path(self.ca_file) if self.ca_file else None):
            if path is not None and path.is_file():
                return path.read_bytes()
        raise RPCError("no monitor CA (ca.pem or --ca-file) to verify monitor-api")

    def _get_stub(self) -> pb_grpc.MonitorServiceStub:
        cert = self.cfg.certificate()
        with self._lock:
            if self._stub is None or cert is not self._cert:
                if self._channel is not None:
                    self._channel.close()
                creds = grpc.ssl_channel_credentials(
                    root_certificates=self._roots(),
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
        """Drop the channel so the next call reconnects (TLS errors, refused, reset)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None
            self._cert = None

    def close(self) -> None:
        self.flush()

    def _metadata(self) -> list[tuple[str, str]]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        meta = [(k.lower(), v) for k, v in carrier.items()]
        meta.append(("authorization", f"Bearer {self.cfg.bearer()}"))
        return meta

    def _call(self, name: str, request: Any, timeout: float) -> Any:
        """One RPC inside a client span, so its trace context always reaches monitor-api."""
        span_name = f"monitor.v2.MonitorService/{name}"
        with self._tracer.start_as_current_span(span_name, kind=trace.SpanKind.CLIENT):
            return self._call_in_span(name, request, timeout)

    def _call_in_span(self, name: str, request: Any, timeout: float) -> Any:
        started = time.monotonic()
        ok = False
        try:
            for attempt in (1, 2):
                method = getattr(self._get_stub(), name)
                try:
                    result = method(request, timeout=timeout, metadata=self._metadata())
                    ok = True
                    return result
                except grpc.RpcError as exc:
                    code = exc.code()  # type: ignore[attr-defined]
                    if code in _FLUSH_CODES:
                        self.flush()
                    if attempt == 1 and code in _RETRY_CODES:
                        continue
                    raise RPCError(f"{name}: {code.name}: {exc.details()}", code) from None  # type: ignore[attr-defined]
            raise AssertionError("unreachable")
        finally:
            if self._on_call is not None:
                self._on_call(name, ok, time.monotonic() - started)

    def get_config(self, mon_id: str) -> pb.GetConfigResponse:
        return self._call(
            "GetConfig", pb.GetConfigRequest(mon_id=mon_id), min(self.timeout, GET_CONFIG_TIMEOUT)
        )

    def get_servers(self, mon_id: str) -> pb.GetServersResponse:
        return self._call("GetServers", pb.GetServersRequest(mon_id=mon_id), self.timeout)

    def submit_results(self, request: pb.SubmitResultsRequest) -> bool:
        """True when accepted; ALREADY_EXISTS (the batch was accepted before) counts as success."""
        try:
            return bool(self._call("SubmitResults", request, self.timeout).ok)
        except RPCError as exc:
            if exc.code == grpc.StatusCode.ALREADY_EXISTS:
                log.info(
                    "batch was already accepted",
                    extra={"batchID": request.batch_id.decode(errors="replace")},
                )
                return True
            raise
