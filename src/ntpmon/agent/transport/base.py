"""What both RPC protocols share (agent.md §9.2): the calls, the error type, retry and flush.

The workers only see :class:`MonitorClient`'s methods and :class:`RPCError` with a Connect code
name, whichever protocol carries the call. A protocol subclass implements one method,
:meth:`MonitorClient._invoke`, and says per failure whether it is a transport error (retried
once) and whether pooled connections must go (flushed); everything else lives here once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import propagate, trace

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.common.errors import NtpmonError
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

log = logging.getLogger(__name__)

CALL_TIMEOUT = 60.0
GET_CONFIG_TIMEOUT = 35.0
TLS_HANDSHAKE_TIMEOUT = 10.0
SERVICE = "monitor.v2.MonitorService"

UNAVAILABLE = "unavailable"
ALREADY_EXISTS = "already_exists"
DEADLINE_EXCEEDED = "deadline_exceeded"
UNKNOWN = "unknown"
CODES = frozenset(
    {
        "canceled",
        UNKNOWN,
        "invalid_argument",
        DEADLINE_EXCEEDED,
        "not_found",
        ALREADY_EXISTS,
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        UNAVAILABLE,
        "data_loss",
        "unauthenticated",
    }
)
"""The Connect error code names; gRPC status codes map onto them one to one."""

M = TypeVar("M")


class RPCError(NtpmonError):
    """A monitor-API call failed.

    ``code`` is the Connect code name (``unavailable``, ``permission_denied``, ...) on both
    protocols, None for local errors. ``transport`` marks failures below the RPC (refused,
    reset, TLS), which are retried once; ``flush`` asks for the pooled connections to be dropped.
    """

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        transport: bool = False,
        flush: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transport = transport
        self.flush = flush


class MonitorClient:
    """Thread-safe client of ``monitor.v2.MonitorService``; one instance serves both workers.

    Trust for monitor-api is the monitor CA only (DESIGN.md, Trust): ``rpc_ca_file`` when given,
    else the ``ca.pem`` the config response stored, else ``ca_file`` (the devel CA that also
    verifies the management API). System roots are never used here.
    """

    protocol = ""

    def __init__(
        self,
        cfg: AppConfig,
        base_url: str,
        *,
        ca_file: str | None = None,
        rpc_ca_file: str | None = None,
        timeout: float = CALL_TIMEOUT,
        on_call: Callable[[str, bool, float], None] | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.cfg = cfg
        self.base_url = base_url
        self.ca_file = ca_file
        self.rpc_ca_file = rpc_ca_file
        self.timeout = timeout
        self._on_call = on_call
        self._tracer = tracer or trace.get_tracer(__name__)
        self._lock = threading.Lock()

    def roots_pem(self) -> bytes:
        """The PEM trust anchors for monitor-api, in the order the class docstring gives."""
        candidates = (self.rpc_ca_file, self.cfg.ca_path, self.ca_file)
        for path in candidates:
            if path and Path(path).is_file():
                return Path(path).read_bytes()
        raise RPCError("no monitor CA (--rpc-ca-file, ca.pem or --ca-file) to verify monitor-api")

    def request_headers(self) -> dict[str, str]:
        """Trace context of the current span and the bearer token, sent with every call."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        headers["Authorization"] = f"Bearer {self.cfg.bearer()}"
        return headers

    def flush(self) -> None:
        """Drop pooled connections so the next call reconnects (TLS errors, refused, reset)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release every connection; the client may still be used afterwards (it reconnects)."""
        self.flush()

    def _invoke(self, method: str, request: Any, response_type: type[M], timeout: float) -> M:
        """One attempt of one unary call; raises :class:`RPCError`."""
        raise NotImplementedError

    def _call(self, method: str, request: Any, response_type: type[M], timeout: float) -> M:
        """One RPC inside a client span, so its trace context always reaches monitor-api."""
        span_name = f"{SERVICE}/{method}"
        with self._tracer.start_as_current_span(span_name, kind=trace.SpanKind.CLIENT):
            started = time.monotonic()
            ok = False
            try:
                result = self._with_one_retry(method, request, response_type, timeout)
                ok = True
                return result
            finally:
                if self._on_call is not None:
                    self._on_call(method, ok, time.monotonic() - started)

    def _with_one_retry(
        self, method: str, request: Any, response_type: type[M], timeout: float
    ) -> M:
        for attempt in (1, 2):
            try:
                return self._invoke(method, request, response_type, timeout)
            except RPCError as exc:
                if exc.flush:
                    self.flush()
                if attempt == 1 and exc.transport:
                    log.debug("retrying after a transport error", extra={"error": str(exc)})
                    continue
                prefix = f"{method}: {exc.code}" if exc.code else method
                raise RPCError(f"{prefix}: {exc}", exc.code) from None
        raise AssertionError("unreachable")

    def get_config(self, mon_id: str) -> pb.GetConfigResponse:
        """The monitor's operational config (35 s deadline at most)."""
        request = pb.GetConfigRequest(mon_id=mon_id)
        timeout = min(self.timeout, GET_CONFIG_TIMEOUT)
        return self._call("GetConfig", request, pb.GetConfigResponse, timeout)

    def get_servers(self, mon_id: str) -> pb.GetServersResponse:
        """The next batch: its id, one ticket per server, maybe a fresh config."""
        request = pb.GetServersRequest(mon_id=mon_id)
        return self._call("GetServers", request, pb.GetServersResponse, self.timeout)

    def submit_results(self, request: pb.SubmitResultsRequest) -> bool:
        """True when accepted; ``already_exists`` (the batch was accepted before) is success."""
        try:
            reply = self._call("SubmitResults", request, pb.SubmitResultsResponse, self.timeout)
        except RPCError as exc:
            if exc.code == ALREADY_EXISTS:
                log.info(
                    "batch was already accepted",
                    extra={"batchID": request.batch_id.decode(errors="replace")},
                )
                return True
            raise
        return bool(reply.ok)
