"""The gRPC listener: mutual TLS against the monitor CA, per-call identity, access logs.

grpcio interceptors cannot see the TLS auth context, so each handler is wrapped instead: the
wrapper takes the monitor name from the verified client certificate (api.md §4.1), runs the
handler, maps errors to status codes, records the duration and writes one access log line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import grpc
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.api.admission import Priority, PriorityScheduler
from ntpmon.api.defaults import DEFAULT_WORKERS
from ntpmon.api.identity import MISSING_NAME, monitor_name_from_cert
from ntpmon.api.jwtauth import InvalidTokenError, JwtVerifier, bearer_token
from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.rpcerrors import RpcError
from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.api.tracing import RpcTracer
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

log = logging.getLogger(__name__)
access_log = logging.getLogger("ntpmon.api.access")

SERVICE = "monitor.v2.MonitorService"
MAX_MESSAGE_BYTES = 1 << 20
PRIORITIES = {
    "SubmitResults": Priority.SUBMIT,
    "GetConfig": Priority.CONFIG,
    "GetServers": Priority.WORK,
}


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The server's certificate chain and key, and the CA that client certificates must chain to."""

    cert_pem: str
    key_pem: str
    client_ca_pem: str


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


Identify = Callable[[grpc.ServicerContext, dict[str, str], str], str]
"""Returns the caller's monitor name for (context, metadata, method) or raises RpcError."""


class CertificateIdentity:
    """mTLS listener: the monitor name in the verified client certificate (metadata ignored).

    The name is a pure function of the certificate, which an agent presents on every call of
    its connection: parsing it once per distinct certificate (bounded LRU per listener) instead
    of per call saves an X.509 parse per RPC.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._name_of = lru_cache(maxsize=cache_size)(monitor_name_from_cert)

    def __call__(self, context: grpc.ServicerContext, metadata: dict[str, str], method: str) -> str:
        certs = context.auth_context().get("x509_pem_cert") or []
        name = self._name_of(certs[0] if certs else None)
        if name is None:
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, MISSING_NAME)
        return name


class JwtIdentity:
    """JWT listener: the subject of the bearer token, checked for the method's scope."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self._verifier = verifier

    def __call__(self, context: grpc.ServicerContext, metadata: dict[str, str], method: str) -> str:
        token = bearer_token(metadata.get("authorization", ""))
        if not token:
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "Authentication required")
        try:
            return self._verifier.subject(token, method)
        except InvalidTokenError as exc:
            log.info("invalid JWT", extra={"method": method, "reason": str(exc)})
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "Invalid JWT token") from None


def _wrap(
    method: str,
    fn: Callable[[Any, CallInfo], Any],
    metrics: ApiMetrics,
    tracer: RpcTracer,
    identify: Identify,
) -> Callable[[Any, grpc.ServicerContext], Any]:
    pid = os.getpid()  # which process served the call (--processes N)

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.monotonic()
        metadata = _metadata(context)
        user_agent = metadata.get("user-agent", "")
        code = grpc.StatusCode.OK
        mon_id = getattr(request, "mon_id", "")
        name: str | None = None
        with tracer.span(method, metadata, mon_id) as span:
            try:
                name = identify(context, metadata, method)
                span.set("monitor_name", name)
                return fn(request, CallInfo(name=name, user_agent=user_agent, span=span))
            except RpcError as exc:
                code = exc.code
                span.fail(exc.code.name, exc.message)
                context.abort(exc.code, exc.message)
            except SQLAlchemyError as exc:
                code = grpc.StatusCode.INTERNAL
                log.error(
                    "database error",
                    extra={"monitor": name, "method": method, "error": str(exc).splitlines()[0]},
                )
                span.fail(code.name, "database error")
                context.abort(code, "internal error")
            finally:
                elapsed = time.monotonic() - started
                metrics.rpc_duration.labels(method, code.name).observe(elapsed)
                if access_log.isEnabledFor(logging.INFO):
                    access_log.info(
                        "rpc",
                        extra={
                            "monitor": name or "unknown",
                            "mon_id": mon_id,
                            "method": method,
                            "peer": context.peer(),
                            "user_agent": user_agent,
                            "duration_ms": round(elapsed * 1000, 2),
                            "code": code.name,
                            "pid": pid,
                        },
                    )

    return handler


def build_handler(
    service: MonitorService,
    metrics: ApiMetrics,
    tracer: RpcTracer,
    identify: Identify | None = None,
    scheduler: PriorityScheduler | None = None,
) -> grpc.GenericRpcHandler:
    """The generic handler of the three methods (paths ``/monitor.v2.MonitorService/...``).

    ``identify`` defaults to the client certificate's monitor name (:class:`CertificateIdentity`).
    With a ``scheduler`` each method runs on its threads at the method's priority
    (:mod:`ntpmon.api.admission`; listeners of one process share one); without, on the
    listener's executor in arrival order.
    """
    identify = identify or CertificateIdentity()
    methods = {
        "GetConfig": (service.get_config, pb.GetConfigRequest, pb.GetConfigResponse),
        "GetServers": (service.get_servers, pb.GetServersRequest, pb.GetServersResponse),
        "SubmitResults": (
            service.submit_results,
            pb.SubmitResultsRequest,
            pb.SubmitResultsResponse,
        ),
    }
    handlers = {}
    for name, (fn, req, resp) in methods.items():
        behavior = _wrap(name, fn, metrics, tracer, identify)
        if scheduler is not None:
            # grpcio runs a handler on its behavior's own executor when it has one
            behavior.experimental_thread_pool = scheduler.lane(PRIORITIES[name], name)  # type: ignore[attr-defined]
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=req.FromString,
            response_serializer=resp.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class GrpcListener:
    """A started gRPC server on one address; :meth:`stop` lets in-flight calls finish."""

    def __init__(
        self,
        handler: grpc.GenericRpcHandler,
        tls: TlsMaterial,
        address: str,
        *,
        max_workers: int = DEFAULT_WORKERS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        require_client_cert: bool = True,
        reuse_port: bool = False,
    ) -> None:
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            handlers=[handler],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                # only --processes N shares the port between processes
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
        )
        credentials = grpc.ssl_server_credentials(
            [(tls.key_pem.encode(), tls.cert_pem.encode())],
            root_certificates=tls.client_ca_pem.encode() if require_client_cert else None,
            require_client_auth=require_client_cert,
        )
        self.port = self._server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self._server.start()

    def shutdown(self, grace: float) -> threading.Event:
        """Refuse new calls; the event is set once running ones finished (or ``grace`` passed)."""
        return self._server.stop(grace)

    def stop(self, grace: float) -> None:
        """Refuse new calls, wait up to ``grace`` seconds for running ones, then close."""
        self.shutdown(grace).wait()
