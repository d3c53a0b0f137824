"""A management-API stand-in over real HTTPS, implementing the contract's HTTP shapes.

Used only until monitor-api's management API is on main (the brief allows it as a fixture);
agent.md §19 prescribes its default behaviour: 401 without a bearer token, otherwise ``{}``;
the OIDC endpoint answers 401.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: str


@dataclass
class FakeManagement:
    """Answers are configured by the test; every request is recorded."""

    config_status: int = 200
    config_doc: dict[str, Any] = field(default_factory=dict)
    token_status: int = 401
    token_doc: dict[str, Any] = field(default_factory=dict)
    registration: list[tuple[int, str, bytes]] = field(default_factory=list)
    valid_keys: set[str] | None = None
    requests: list[Recorded] = field(default_factory=list)
    issue_cert: Any = None  # callable(tls_name) -> (cert_pem, key_pem)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)


def _handler(state: FakeManagement) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Traceid", "fake-trace")
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> Recorded:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            rec = Recorded(
                self.command,
                parts.path,
                parse_qs(parts.query),
                dict(self.headers.items()),
                body,
                self.client_address[0],
            )
            with state.lock:
                state.requests.append(rec)
            return rec

        def _authorized(self, rec: Recorded) -> bool:
            auth = rec.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:]:
                return False
            return state.valid_keys is None or auth[7:] in state.valid_keys

        def do_GET(self) -> None:
            rec = self._record()
            if rec.path != "/monitor/api/config":
                self._send(404, b"not found", "text/plain")
                return
            if not self._authorized(rec):
                self._send(401, b"unauthorized", "text/plain")
                return
            if state.config_status != 200:
                self._send(state.config_status, b"error", "text/plain")
                return
            doc = json.loads(json.dumps(state.config_doc))
            if rec.query.get("request_certificate") == ["true"] and state.issue_cert:
                cert, key, ca = state.issue_cert(doc.get("tls_name", ""))
                doc["tls"] = {"cert": cert.decode(), "key": key.decode(), "ca": ca.decode()}
            self._send(200, json.dumps(doc).encode())

        def do_POST(self) -> None:
            rec = self._record()
            if rec.path == "/api/oidc/token":
                if not self._authorized(rec) or state.token_status == 401:
                    self._send(401, b"unauthorized", "text/plain")
                    return
                self._send(state.token_status, json.dumps(state.token_doc).encode())
                return
            if rec.path == "/monitor/api/registration":
                with state.lock:
                    status, ctype, body = (
                        state.registration.pop(0)
                        if len(state.registration) > 1
                        else state.registration[0]
                    )
                self._send(status, body, ctype)
                return
            self._send(404, b"not found", "text/plain")

    return Handler


class ManagementServer:
    """Serves FakeManagement on 127.0.0.1:<ephemeral> with a certificate from the test CA."""

    def __init__(self, state: FakeManagement, cert_file: Path, key_file: Path) -> None:
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ManagementServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
