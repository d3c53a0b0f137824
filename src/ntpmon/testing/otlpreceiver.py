"""A local OTLP/HTTP collector that requires a client certificate, as the pool's does.

Tests and the footprint bench point the agent at it on loopback: it accepts protobuf POSTs on
``/v1/traces``, ``/v1/metrics`` and ``/v1/logs``, keeps what arrived decoded with
opentelemetry-proto's own classes (so the assertions are about what a real collector would
read), and counts the connections it accepted and the TLS handshakes it refused. Tests and
tools only.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_REQUESTS: dict[str, type[Message]] = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}


@dataclass(frozen=True, slots=True)
class Export:
    """One POST that arrived: its path, the client certificate's CN and the decoded body."""

    path: str
    client_cn: str
    content_type: str
    headers: dict[str, str]
    request: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: OtlpReceiver, context: ssl.SSLContext) -> None:
        self.receiver = receiver
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """TLS per connection, the handshake in the handler's thread (a refusal is counted)."""
        sock, addr = self.socket.accept()
        with self.receiver.lock:
            self.receiver.connections += 1
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.receiver.lock:
            self.receiver.refused += 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = _REQUESTS.get(self.path)
        if kind is None:
            self.send_error(404)
            return
        request = kind.FromString(body)
        cert = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
        subject = dict(pair for rdn in cert.get("subject", ()) for pair in rdn)
        self.server.receiver.record(
            Export(
                self.path,
                subject.get("commonName", ""),
                self.headers.get("Content-Type", ""),
                {k.lower(): v for k, v in self.headers.items()},
                request,
            )
        )
        status, headers = self.server.receiver.answer()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")  # an empty Export*ServiceResponse
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what arrived, not an access log."""


class OtlpReceiver:
    """``with OtlpReceiver(cert, key, ca) as r:`` serves ``r.url`` until the block ends.

    ``cert``/``key`` are the server's PEM files; clients must present a certificate that
    chains to ``ca`` (CERT_REQUIRED).
    """

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(cert), str(key))
        self.lock = threading.Lock()
        self.exports: list[Export] = []
        self.connections = 0
        self.refused = 0
        self.status = 200
        """The HTTP status every POST gets (a test sets 400 to play a collector that refuses)."""
        self.answers: list[tuple[int, dict[str, str]]] = []
        """Status and extra headers for the next POSTs, in order, before ``status`` applies."""
        self._arrived = threading.Condition(self.lock)
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self) -> tuple[int, dict[str, str]]:
        """The next scripted answer, else ``status``."""
        with self.lock:
            return self.answers.pop(0) if self.answers else (self.status, {})

    def record(self, export: Export) -> None:
        with self._arrived:
            self.exports.append(export)
            self._arrived.notify_all()

    def wait_for(self, path: str, timeout: float = 20.0) -> bool:
        """Whether a POST to ``path`` has arrived within ``timeout`` seconds."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: any(e.path == path for e in self.exports), timeout
            )

    def received(self, path: str) -> list[Export]:
        with self.lock:
            return [e for e in self.exports if e.path == path]

    def spans(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span that arrived."""
        for export in self.received("/v1/traces"):
            for rs in export.request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        yield attributes(rs.resource.attributes), span

    def metric_names(self) -> set[str]:
        return {
            metric.name
            for export in self.received("/v1/metrics")
            for rm in export.request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }

    def log_bodies(self) -> list[str]:
        return [
            record.body.string_value
            for export in self.received("/v1/logs")
            for rl in export.request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list as a dict (string, int, double and bool values)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        field = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, field) if field else None
    return out
