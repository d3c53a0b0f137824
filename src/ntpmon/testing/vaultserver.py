"""A stand-in for HashiCorp Vault on loopback: the few endpoints monitor-api uses.

Implemented from Vault's HTTP API documentation (request and response shapes, status codes),
not from a real server: KV v2 read and write (``GET``/``POST /v1/<mount>/data/<path>``, with
``?version=`` and check-and-set), PKI ``POST /v1/<mount>/issue/<role>`` and the unauthenticated
``GET /v1/<mount>/ca/pem``, AppRole ``POST /v1/auth/approle/login``. Tokens go in
``X-Vault-Token``; a missing, unknown or expired token is ``403 {"errors":["permission
denied"]}``; a sealed Vault answers every request ``503 {"errors":["Vault is sealed"]}``.
Tests can seal it, expire every token and read the requests it saw.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ntpmon.api.ca import EmbeddedCA

_END = "-----END CERTIFICATE-----"


@dataclass
class _Version:
    data: dict[str, Any]
    created: str


@dataclass
class VaultState:
    """What the stand-in holds; tests read and change it directly."""

    kv_mount: str = "kv"
    pki_mount: str = "pki_servers"
    pki_roles: set[str] = field(default_factory=set)
    approles: dict[str, str] = field(default_factory=dict)  # role_id -> secret_id
    tokens: set[str] = field(default_factory=set)
    kv: dict[str, list[_Version]] = field(default_factory=dict)  # path -> versions 1..n
    sealed: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    issued: list[dict[str, Any]] = field(default_factory=list)  # PKI issue parameters
    ca: EmbeddedCA = field(default_factory=lambda: EmbeddedCA.create("stand-in Vault PKI"))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _envelope(data: Any = None, auth: Any = None) -> dict[str, Any]:
    """Vault's response wrapper around ``data`` or ``auth``."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }


def _metadata(version: int, entry: _Version) -> dict[str, Any]:
    return {
        "created_time": entry.created,
        "custom_metadata": None,
        "deletion_time": "",
        "destroyed": False,
        "version": version,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`VaultState.requests` instead."""

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _errors(self, status: int, *errors: str) -> None:
        self._reply(status, {"errors": list(errors)})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        parsed = json.loads(self.rfile.read(length))
        return parsed if isinstance(parsed, dict) else {}

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:  # hvac writes with POST; Vault treats PUT the same
        self._route("POST")

    def _route(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        with self.server.lock:
            state.requests.append((method, url.path))
            if state.sealed:
                self._errors(503, "Vault is sealed")
                return
            parts = url.path.strip("/").split("/")
            if parts[:1] != ["v1"]:
                self._errors(404)
                return
            parts = parts[1:]
            if method == "POST" and parts == ["auth", "approle", "login"]:
                self._login(self._body())
                return
            if method == "GET" and parts == [state.pki_mount, "ca", "pem"]:
                self._reply(200, state.ca.root_pem(), "application/pem-certificate-chain")
                return
            if self.headers.get("X-Vault-Token") not in state.tokens:
                self._errors(403, "permission denied")
                return
            if len(parts) > 2 and parts[0] == state.kv_mount and parts[1] == "data":
                path = "/".join(parts[2:])
                if method == "GET":
                    self._kv_read(path, parse_qs(url.query).get("version", ["0"])[0])
                else:
                    self._kv_write(path, self._body())
                return
            if method == "POST" and len(parts) == 3 and parts[:2] == [state.pki_mount, "issue"]:
                self._issue(parts[2], self._body())
                return
            self._errors(404)

    def _login(self, body: dict[str, Any]) -> None:
        state = self.server.state
        role_id, secret_id = body.get("role_id"), body.get("secret_id")
        if not role_id or state.approles.get(role_id) != secret_id:
            self._errors(400, "invalid role or secret ID")
            return
        token = "hvs." + secrets.token_urlsafe(24)
        state.tokens.add(token)
        auth = {
            "client_token": token,
            "accessor": secrets.token_urlsafe(12),
            "policies": ["default", "ntpmon"],
            "token_policies": ["default", "ntpmon"],
            "metadata": {"role_name": "ntpmon"},
            "lease_duration": 1200,
            "renewable": True,
            "entity_id": str(uuid.uuid4()),
            "token_type": "service",
            "orphan": True,
        }
        self._reply(200, _envelope(auth=auth))

    def _kv_read(self, path: str, version_text: str) -> None:
        versions = self.server.state.kv.get(path, [])
        version = int(version_text) if version_text.isdigit() else 0
        version = version or len(versions)
        if not 1 <= version <= len(versions):
            self._errors(404)
            return
        entry = versions[version - 1]
        data = {"data": entry.data, "metadata": _metadata(version, entry)}
        self._reply(200, _envelope(data))

    def _kv_write(self, path: str, body: dict[str, Any]) -> None:
        versions = self.server.state.kv.setdefault(path, [])
        cas = (body.get("options") or {}).get("cas")
        if cas is not None and int(cas) != len(versions):
            self._errors(400, "check-and-set parameter did not match the current version")
            return
        if not isinstance(body.get("data"), dict):
            self._errors(400, "no data provided")
            return
        entry = _Version(body["data"], _now())
        versions.append(entry)
        self._reply(200, _envelope(_metadata(len(versions), entry)))

    def _issue(self, role: str, body: dict[str, Any]) -> None:
        state = self.server.state
        if role not in state.pki_roles:
            self._errors(400, f"unknown role: {role}")
            return
        common_name = str(body.get("common_name") or "")
        if not common_name:
            self._errors(400, "the common_name field is required")
            return
        state.issued.append(body)
        names = [common_name]
        for key in ("alt_names", "ip_sans"):
            names += [n for n in str(body.get(key) or "").split(",") if n and n not in names]
        ttl = str(body.get("ttl") or "72h")
        seconds = int(ttl[:-1]) * (3600 if ttl.endswith("h") else 1)
        issued = state.ca.issue_custom(common_name, names, timedelta(seconds=seconds))
        leaf = issued.cert_pem.split(_END)[0] + _END + "\n"
        root = state.ca.root_pem()
        self._reply(
            200,
            _envelope(
                {
                    "certificate": leaf,
                    "issuing_ca": root,
                    "ca_chain": [root],
                    "private_key": issued.key_pem,
                    "private_key_type": "ec",
                    "serial_number": secrets.token_hex(16),
                    "expiration": int(datetime.now(UTC).timestamp()) + seconds,
                }
            ),
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: VaultState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.lock = threading.Lock()


class FakeVault:
    """A running stand-in on ``127.0.0.1:<port>``; use as a context manager."""

    def __init__(self, state: VaultState | None = None) -> None:
        self.state = state or VaultState()
        self._server = _Server(self.state)
        self.addr = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-vault", daemon=True
        )

    def __enter__(self) -> FakeVault:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering and close the port (an unreachable Vault from now on)."""
        self._server.shutdown()
        self._server.server_close()

    def new_token(self) -> str:
        token = "hvs." + secrets.token_urlsafe(24)
        with self._server.lock:
            self.state.tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as when their TTL runs out)."""
        with self._server.lock:
            self.state.tokens.clear()

    def seal(self, sealed: bool = True) -> None:
        with self._server.lock:
            self.state.sealed = sealed

    def requests_seen(self) -> list[tuple[str, str]]:
        with self._server.lock:
            return list(self.state.requests)
