"""The scripted ``monitor.v2.MonitorService`` of fake_monitor_api, served over the Connect
protocol (HTTP/1.1, real mutual TLS) with the standard library, for the agent's Connect client.

It answers as connect-go does (``application/proto`` bodies, JSON errors with connect-go's HTTP
status per code) and can misbehave on cue through :attr:`FakeConnectApi.faults`: a plain-text
401, a status without a JSON body, a reset connection, a slow answer, which connect-go's server
never does by itself but what sits in front of it (auth layer, proxies) does.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from agent.fake_monitor_api import Script, Servicer
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

CODE_TO_HTTP = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}
REQUESTS = {
    "GetConfig": pb.GetConfigRequest,
    "GetServers": pb.GetServersRequest,
    "SubmitResults": pb.SubmitResultsRequest,
}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour: ``reset`` closes the connection unanswered; ``status``
    answers ``status`` with ``body`` as ``content_type``; ``sleep`` delays the real answer."""

    kind: str
    status: int = 500
    content_type: str = "text/plain"
    body: bytes = b""
    seconds: float = 0.0


@dataclass
class Seen:
    """One request as it arrived: path, headers, and the client port (one per connection)."""

    path: str
    headers: dict[str, str]
    client_port: int


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()


class ConnectContext:
    """The part of ``grpc.ServicerContext`` the scripted servicer uses."""

    def __init__(self, peer_pem: bytes, headers: dict[str, str]) -> None:
        self._peer_pem = peer_pem
        self._headers = headers

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._peer_pem]}

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return list(self._headers.items())

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise AbortedError(code, message)


@dataclass
class _State:
    servicer: Servicer
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with state.lock:
            state.seen.append(Seen(self.path, headers, self.client_address[1]))
            fault = state.faults.pop(0) if state.faults else None
        if fault is not None and fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None and fault.kind == "status":
            self._answer(fault.status, fault.content_type, fault.body)
            return
        if fault is not None and fault.kind == "sleep":
            time.sleep(fault.seconds)
        self._dispatch(headers, body)

    def _dispatch(self, headers: dict[str, str], body: bytes) -> None:
        method = self.path.rpartition("/")[2]
        prefix = "/monitor.v2.MonitorService/"
        if not self.path.startswith(prefix) or method not in REQUESTS:
            self._error("unimplemented", f"{self.path} is not a procedure")
            return
        if headers.get("content-type") != "application/proto":
            self._answer(415, "text/plain", b"unsupported content type")
            return
        peer = self.connection.getpeercert(binary_form=True) or b""
        context = ConnectContext(ssl.DER_cert_to_PEM_cert(peer).encode() if peer else b"", headers)
        request = REQUESTS[method].FromString(body)
        try:
            reply = getattr(self.server.state.servicer, method)(request, context)
        except AbortedError as exc:
            self._error(exc.code, str(exc))
            return
        self._answer(200, "application/proto", reply.SerializeToString())

    def _error(self, code: str, message: str) -> None:
        doc = json.dumps({"code": code, "message": message}).encode()
        self._answer(CODE_TO_HTTP[code], "application/json", doc)

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.state = state

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake runs in the request's own thread, as a real server's would."""
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection the test reset on purpose is not an error worth a traceback."""


class FakeConnectApi:
    """Listens on 127.0.0.1:<ephemeral> with a server cert; client certs must chain to ``ca``."""

    protocol = "connect"

    def __init__(self, script: Script, server_cert: bytes, server_key: bytes, ca: bytes) -> None:
        self.servicer = Servicer(script)
        self.state = _State(self.servicer)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_bytes(server_cert)
            key.write_bytes(server_key)
            context.load_cert_chain(cert, key)
        context.load_verify_locations(cadata=ca.decode())
        context.verify_mode = ssl.CERT_REQUIRED
        self.server = _Server(context, self.state)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def faults(self) -> list[Fault]:
        return self.state.faults

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    def __enter__(self) -> FakeConnectApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(2)
