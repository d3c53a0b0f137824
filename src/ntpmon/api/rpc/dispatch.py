"""One RPC, whatever protocol carried it: identity, span, service call, metrics, access log.

Runs on a handler thread of the priority scheduler (the service is synchronous database
work). Every outcome is a status code the caller sees *and* the code the access log and
``monitorapi_rpc_duration_seconds`` record: an unexpected exception is INTERNAL in all three,
a lost database connection UNAVAILABLE (clients retry it), so no failure looks like success.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.api.admission import Priority
from ntpmon.api.identity import MISSING_NAME, monitor_name_from_cert
from ntpmon.api.jwtauth import InvalidTokenError, bearer_token
from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.rpcerrors import RpcError
from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.api.tracing import RpcTracer
from ntpmon.db.tx import is_connection_error
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

log = logging.getLogger(__name__)
access_log = logging.getLogger("ntpmon.api.access")

SERVICE = "monitor.v2.MonitorService"
PRIORITIES = {
    "SubmitResults": Priority.SUBMIT,
    "GetConfig": Priority.CONFIG,
    "GetServers": Priority.WORK,
}


class TokenVerifier(Protocol):
    """Checks a bearer token for a method; returns its subject or raises InvalidTokenError."""

    def subject(self, token: str, method: str) -> str: ...


@dataclass(frozen=True, slots=True)
class CallMeta:
    """What the transport knows about a call before the service sees it."""

    method: str
    headers: Mapping[str, str]
    peer: str
    peer_cert: bytes | None  # DER of the verified client certificate, when one was presented
    protocol: str
    deadline: float | None = None  # time.monotonic() after which the caller gave up


class CallerIdentity:
    """The monitor name of a call (upstream's ``server/auth.go``).

    A client certificate the handshake verified gives the identity (any token is ignored);
    without one, ``Authorization: Bearer`` must carry a JWT a verifier accepts. A certificate's
    name is a pure function of it, so it is parsed once per distinct certificate (bounded LRU).
    """

    def __init__(self, verifier: TokenVerifier | None = None, cache_size: int = 4096) -> None:
        self._verifier = verifier
        self._name_of = lru_cache(maxsize=cache_size)(monitor_name_from_cert)

    def __call__(self, meta: CallMeta) -> str:
        if meta.peer_cert:
            name = self._name_of(meta.peer_cert)
            if name is None:
                raise RpcError(grpc.StatusCode.UNAUTHENTICATED, MISSING_NAME)
            return name
        token = bearer_token(meta.headers.get("authorization", ""))
        if not token or self._verifier is None:
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "Authentication required")
        try:
            return self._verifier.subject(token, meta.method)
        except InvalidTokenError as exc:
            log.info("invalid JWT", extra={"method": meta.method, "reason": str(exc)})
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "Invalid JWT token") from None


Decode = Callable[[type[Message]], Message]


class Dispatcher:
    """The service's three methods behind one call path shared by every protocol."""

    def __init__(
        self,
        service: MonitorService,
        metrics: ApiMetrics,
        tracer: RpcTracer,
        identify: CallerIdentity,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.identify = identify
        self.methods: dict[str, tuple[Callable[[Any, CallInfo], Message], type[Message]]] = {
            "GetConfig": (service.get_config, pb.GetConfigRequest),
            "GetServers": (service.get_servers, pb.GetServersRequest),
            "SubmitResults": (service.submit_results, pb.SubmitResultsRequest),
        }
        self._pid = os.getpid()  # which process served the call (--processes N)

    def run(self, meta: CallMeta, decode: Decode) -> Message:
        """The response message, or :class:`RpcError` with the status the caller gets."""
        started = time.monotonic()
        user_agent = meta.headers.get("user-agent", "")
        code = grpc.StatusCode.OK
        name: str | None = None
        mon_id = ""
        fn, request_class = self.methods[meta.method]
        try:
            if meta.deadline is not None and started >= meta.deadline:
                raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded in queue")
            request = decode(request_class)
            mon_id = getattr(request, "mon_id", "")
            with self.tracer.span(meta.method, meta.headers, mon_id) as span:
                try:
                    name = self.identify(meta)
                    span.set("monitor_name", name)
                    return fn(request, CallInfo(name=name, user_agent=user_agent, span=span))
                except Exception as exc:
                    error = _as_rpc_error(exc, meta.method, name)
                    span.fail(error.code.name, error.message)
                    raise error from None
        except RpcError as exc:
            code = exc.code
            raise
        finally:
            elapsed = time.monotonic() - started
            self.metrics.rpc_duration.labels(meta.method, code.name).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "rpc",
                    extra={
                        "monitor": name or "unknown",
                        "mon_id": mon_id,
                        "method": meta.method,
                        "protocol": meta.protocol,
                        "peer": meta.peer,
                        "user_agent": user_agent,
                        "duration_ms": round(elapsed * 1000, 2),
                        "code": code.name,
                        "pid": self._pid,
                    },
                )


def _as_rpc_error(exc: Exception, method: str, name: str | None) -> RpcError:
    """The status a failure is answered with; unexpected ones are logged here, once."""
    if isinstance(exc, RpcError):
        return exc
    context = {"monitor": name, "method": method}
    if isinstance(exc, SQLAlchemyError):
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if is_connection_error(exc):
            log.warning("database unavailable", extra={**context, "error": first_line})
            return RpcError(grpc.StatusCode.UNAVAILABLE, "database unavailable")
        log.error("database error", extra={**context, "error": first_line})
        return RpcError(grpc.StatusCode.INTERNAL, "internal error")
    log.exception("unexpected error in RPC handler", extra=context)
    return RpcError(grpc.StatusCode.INTERNAL, "internal error")
