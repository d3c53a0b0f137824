"""An external JWT issuer for tests: its keys, the JWKS it serves over HTTPS on loopback, and
tokens signed with its keys (good ones, and the classic forgeries).

Shared by the verifier's own tests (``test_jwks.py``) and the tests that send such tokens
through the real RPC listener, so both talk to the same issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ntpmon.api.ca import EmbeddedCA

SUBJECT = "monitor-1.example.test"
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Keys:
    """The issuer's published keys (by kid) and keys it never published."""

    es384: ec.EllipticCurvePrivateKey
    rs256: rsa.RSAPrivateKey
    es256: ec.EllipticCurvePrivateKey
    stray_es384: ec.EllipticCurvePrivateKey
    stray_rs256: rsa.RSAPrivateKey

    def published(self) -> dict[str, tuple[PublicKey, str]]:
        return {
            "es384": (self.es384.public_key(), "ES384"),
            "rs256": (self.rs256.public_key(), "RS256"),
            "es256": (self.es256.public_key(), "ES256"),
        }


def new_keys() -> Keys:
    """Fresh keys (RSA generation is slow: tests share one set per session)."""
    return Keys(
        es384=ec.generate_private_key(ec.SECP384R1()),
        rs256=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        es256=ec.generate_private_key(ec.SECP256R1()),
        stray_es384=ec.generate_private_key(ec.SECP384R1()),
        stray_rs256=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def _jwk(kid: str, public: PublicKey, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    return json.loads(algorithm.to_jwk(public)) | {"kid": kid, "use": "sig", "alg": alg}


def jwks_document(published: dict[str, tuple[PublicKey, str]]) -> dict[str, Any]:
    return {"keys": [_jwk(kid, public, alg) for kid, (public, alg) in published.items()]}


class JwksServer:
    """An issuer's HTTPS endpoint: answers every GET with ``body``/``status``, records paths."""

    def __init__(self, ca: EmbeddedCA, directory: Path, document: dict[str, Any]) -> None:
        issued = ca.issue_server(["127.0.0.1"], timedelta(hours=1))
        (directory / "jwks.pem").write_text(issued.cert_pem)
        (directory / "jwks.key").write_text(issued.key_pem)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(directory / "jwks.pem", directory / "jwks.key")
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self.status = 200
        self.body = json.dumps(document).encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner._paths.append(self.path)
                    status, body = owner.status, owner.body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests look at the recorded paths instead."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def serve(self, document: dict[str, Any], status: int = 200) -> None:
        with self._lock:
            self.body, self.status = json.dumps(document).encode(), status

    def serve_raw(self, body: bytes, status: int) -> None:
        with self._lock:
            self.body, self.status = body, status

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return list(self._paths)

    @property
    def fetches(self) -> int:
        return len(self.paths)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def claims(issuer: str, /, **overrides: object) -> dict[str, object]:
    """Valid claims of ``issuer``; an override of ``None`` removes the claim."""
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, object] = {
        "sub": SUBJECT,
        "aud": "monitor-api",
        "iss": issuer,
        "scope": "monitor:data",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: PrivateKey, alg: str, kid: str | None, body: dict[str, object]) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hs256_with_public_key(public: PublicKey, kid: str, body: dict[str, object]) -> str:
    """The classic confusion: HMAC keyed with the published public key (PyJWT won't sign it)."""
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(body).encode())
    mac = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{_b64(mac)}"


def es384(k: Keys, issuer: str, /, **overrides: object) -> str:
    return signed(k.es384, "ES384", "es384", claims(issuer, **overrides))


def rs256(k: Keys, issuer: str, /, **overrides: object) -> str:
    return signed(k.rs256, "RS256", "rs256", claims(issuer, **overrides))
