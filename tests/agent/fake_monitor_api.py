"""A scripted ``monitor.v2.MonitorService`` over real mutual TLS, for the agent's fault tests.

monitor-api itself is used in the end-to-end test; this stand-in exists to make the server
misbehave on cue (refuse a batch, fail GetServers, answer ALREADY_EXISTS), which the real
service only does for real reasons that are hard to provoke from the agent side.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509

from ntpmon.common.ulid import new_ulid
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc


@dataclass
class Call:
    method: str
    request: Any
    metadata: dict[str, str]
    client_cn: str


@dataclass
class Script:
    """What the next calls answer; lists are consumed one per call, the last entry repeats."""

    config: pb.GetConfigResponse = field(default_factory=pb.GetConfigResponse)
    servers: list[list[bytes]] = field(default_factory=list)  # ip_bytes per batch
    get_servers_errors: list[grpc.StatusCode | None] = field(default_factory=list)
    submit: list[str] = field(default_factory=list)  # ok | refuse | exists | notok


class Servicer(pb_grpc.MonitorServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.issued_batches: list[bytes] = []

    def _record(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        certs = context.auth_context().get("x509_pem_cert") or [b""]
        cn = ""
        if certs[0]:
            cert = x509.load_pem_x509_certificate(certs[0])
            cn = cert.subject.rfc4514_string()
        meta = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self.lock:
            self.calls.append(Call(method, request, meta, cn))

    @staticmethod
    def _next(items: list[Any], default: Any) -> Any:
        if not items:
            return default
        return items.pop(0) if len(items) > 1 else items[0]

    def count(self, method: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.method == method)

    def GetConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("GetConfig", request, context)
        return self.script.config

    def GetServers(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("GetServers", request, context)
        with self.lock:
            error = self._next(self.script.get_servers_errors, None)
            ips = self._next(self.script.servers, [])
        if error is not None:
            context.abort(error, "scripted failure")
        batch = new_ulid(datetime.now(UTC)).text.encode()
        with self.lock:
            self.issued_batches.append(batch)
        servers = [pb.Server(ip_bytes=ip, ticket=b"ticket-" + ip, test_id=b"t") for ip in ips]
        return pb.GetServersResponse(batch_id=batch, servers=servers)

    def SubmitResults(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("SubmitResults", request, context)
        with self.lock:
            outcome = self._next(self.script.submit, "ok")
        if outcome == "refuse":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "batch refused")
        if outcome == "exists":
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "batch already accepted")
        return pb.SubmitResultsResponse(ok=outcome != "notok")


class FakeMonitorApi:
    """Listens on 127.0.0.1:<ephemeral> with a server cert; client certs must chain to ``ca``."""

    protocol = "grpc"

    def __init__(self, script: Script, server_cert: bytes, server_key: bytes, ca: bytes) -> None:
        self.servicer = Servicer(script)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_MonitorServiceServicer_to_server(self.servicer, self.server)
        creds = grpc.ssl_server_credentials(
            [(server_key, server_cert)], root_certificates=ca, require_client_auth=True
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.url = f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeMonitorApi:
        self.server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop(0).wait(2)
