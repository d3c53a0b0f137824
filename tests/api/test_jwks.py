"""Tokens of an external issuer, verified with the JWKS that issuer serves over HTTPS on loopback.

The issuer here is a real HTTPS server (certificate from the test CA) that counts the requests
it answers, so the cache and the fetch rate limit are checked on the wire, not on mocks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.jwks import MIN_FETCH_INTERVAL, JwksVerifier, TokenVerifier
from ntpmon.api.jwtauth import InvalidTokenError, JwtVerifier
from ntpmon.api.oidc import TokenIssuer

pytestmark = pytest.mark.e2e

SUBJECT = "monitor-1.example.test"
OWN_ISSUER = "https://mon.example.test"
METHODS = ("GetConfig", "GetServers", "SubmitResults")
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


@pytest.fixture(scope="session")
def keys() -> Keys:
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


class Ticker:
    """The fetch gate's monotonic clock, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(ca: EmbeddedCA, keys: Keys, tmp_path: Path) -> Iterator[JwksServer]:
    running = JwksServer(ca, tmp_path, jwks_document(keys.published()))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def trust(ca: EmbeddedCA) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.root_pem())


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def verifier(server: JwksServer, trust: ssl.SSLContext, ticker: Ticker) -> JwksVerifier:
    return JwksVerifier(server.issuer, ssl_context=trust, monotonic=ticker)


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


TokenOf = Callable[[Keys, str], str]
HOUR = 3600


ACCEPTED: list[tuple[str, TokenOf, str]] = [
    ("ES384 data GetConfig", es384, "GetConfig"),
    ("ES384 data SubmitResults", es384, "SubmitResults"),
    ("RS256 data SubmitResults", rs256, "SubmitResults"),
    ("RS256 read GetServers", lambda k, i: rs256(k, i, scope="monitor:read"), "GetServers"),
    ("ES384 read GetConfig", lambda k, i: es384(k, i, scope="openid monitor:read"), "GetConfig"),
    ("aud list", lambda k, i: es384(k, i, aud=["website", "monitor-api"]), "SubmitResults"),
    ("monitor claim of 64", lambda k, i: rs256(k, i, monitor="m" * 64), "GetConfig"),
    ("subject of 128", lambda k, i: es384(k, i, sub="s" * 128), "GetConfig"),
    ("past nbf", lambda k, i: es384(k, i, nbf=int(datetime.now(UTC).timestamp()) - 5), "GetConfig"),
]


@pytest.mark.parametrize(
    ("token_of", "method"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_tokens_signed_with_published_keys_are_accepted(
    keys: Keys, server: JwksServer, verifier: JwksVerifier, token_of: TokenOf, method: str
) -> None:
    token = token_of(keys, server.issuer)
    expected = jwt.decode(token, options={"verify_signature": False})["sub"]
    assert verifier.subject(token, method) == expected
    assert server.paths == ["/.well-known/jwks.json"]


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def refused(
    name: str, token_of: TokenOf, reason: str, *, method: str = "GetConfig", fetches: int = 1
) -> Any:
    """A refusal case: the logged reason it must give and the JWKS fetches it may cost.

    ``fetches=0`` says the token is refused before any key lookup (no network traffic for it).
    """
    return pytest.param(token_of, method, reason, fetches, id=name)


REFUSED = [
    refused("issuer with slash", lambda k, i: es384(k, i, iss=i + "/"), "Invalid issuer"),
    refused(
        "other issuer",
        lambda k, i: es384(k, i, iss="https://api.ntppool.dev"),
        "Invalid issuer",
    ),
    refused("no issuer", lambda k, i: rs256(k, i, iss=None), '"iss" claim'),
    refused("other audience", lambda k, i: es384(k, i, aud="website"), "Audience"),
    refused("audience list without us", lambda k, i: es384(k, i, aud=["a", "b"]), "Audience"),
    refused("no audience", lambda k, i: rs256(k, i, aud=None), '"aud" claim'),
    refused("no scope", lambda k, i: es384(k, i, scope=None), "scope does not allow"),
    refused(
        "scope openid",
        lambda k, i: es384(k, i, scope="openid profile"),
        "scope does not allow",
        method="GetServers",
    ),
    refused(
        "scope by substring",
        lambda k, i: es384(k, i, scope="monitor:data2"),
        "scope does not allow",
    ),
    refused("scope as list", lambda k, i: es384(k, i, scope=["monitor:data"]), "not a string"),
    refused("ntpmon's own scope", lambda k, i: es384(k, i, scope="monitor:rpc"), "scope does not"),
    refused(
        "read scope submitting",
        lambda k, i: rs256(k, i, scope="monitor:read"),
        "scope does not allow SubmitResults",
        method="SubmitResults",
    ),
    refused("unknown method", es384, "scope does not allow", method="DeleteEverything"),
    refused("expired", lambda k, i: es384(k, i, iat=_now() - HOUR, exp=_now() - 1), "expired"),
    refused("no exp", lambda k, i: rs256(k, i, exp=None), '"exp" claim'),
    refused("future nbf", lambda k, i: es384(k, i, nbf=_now() + 60), "nbf"),
    refused("empty subject", lambda k, i: es384(k, i, sub=""), "subject"),
    refused("no subject", lambda k, i: es384(k, i, sub=None), '"sub" claim'),
    refused("subject of 129", lambda k, i: rs256(k, i, sub="s" * 129), "subject"),
    refused("monitor claim of 65", lambda k, i: es384(k, i, monitor="m" * 65), "monitor claim"),
    refused("oversized", lambda k, i: es384(k, i, pad="x" * 3000), "token length", fetches=0),
    refused("empty token", lambda k, i: "", "token length", fetches=0),
    refused("garbage", lambda k, i: "not.a.jwt", "header", fetches=0),
    refused(
        "unknown kid",
        lambda k, i: signed(k.es384, "ES384", "nope", claims(i)),
        "no key for kid 'nope'",
    ),
    refused("no kid", lambda k, i: signed(k.es384, "ES384", None, claims(i)), "kid", fetches=0),
    refused(
        "unpublished key under a published kid",
        lambda k, i: signed(k.stray_es384, "ES384", "es384", claims(i)),
        "Signature verification failed",
    ),
    refused(
        "HS256 keyed with the RSA public key",
        lambda k, i: hs256_with_public_key(k.rs256.public_key(), "rs256", claims(i)),
        "'HS256' not allowed",
        fetches=0,
    ),
    refused(
        "HS256 keyed with the EC public key",
        lambda k, i: hs256_with_public_key(k.es384.public_key(), "es384", claims(i)),
        "'HS256' not allowed",
        fetches=0,
    ),
    refused(
        "alg none",
        lambda k, i: jwt.encode(claims(i), None, algorithm="none", headers={"kid": "es384"}),
        "'none' not allowed",
        fetches=0,
    ),
    refused(
        "ES256 although its key is published",
        lambda k, i: signed(k.es256, "ES256", "es256", claims(i)),
        "'ES256' not allowed",
        fetches=0,
    ),
    refused(
        "RS256 under the EC key's kid",
        lambda k, i: signed(k.stray_rs256, "RS256", "es384", claims(i)),
        "not an RS256 key",
    ),
    refused(
        "ES384 under the RSA key's kid",
        lambda k, i: signed(k.stray_es384, "ES384", "rs256", claims(i)),
        "not an ES384 key",
    ),
    refused(
        "ES384 under the P-256 key's kid",
        lambda k, i: signed(k.stray_es384, "ES384", "es256", claims(i)),
        "not an ES384 key",
    ),
]


@pytest.mark.parametrize(("token_of", "method", "reason", "fetches"), REFUSED)
def test_bad_tokens_are_refused(
    keys: Keys,
    server: JwksServer,
    verifier: JwksVerifier,
    token_of: TokenOf,
    method: str,
    reason: str,
    fetches: int,
) -> None:
    with pytest.raises(InvalidTokenError) as refusal:
        verifier.subject(token_of(keys, server.issuer), method)
    assert reason in str(refusal.value)
    assert server.fetches == fetches


def test_many_tokens_concurrently_cost_one_fetch(
    keys: Keys, server: JwksServer, verifier: JwksVerifier
) -> None:
    tokens = [(es384 if n % 2 else rs256)(keys, server.issuer, sub=f"m{n}") for n in range(60)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        subjects = list(pool.map(lambda t: verifier.subject(t, "SubmitResults"), tokens))
    assert subjects == [f"m{n}" for n in range(60)]
    assert server.fetches == 1


def _random_kid_token(keys: Keys, issuer: str) -> str:
    return signed(keys.es384, "ES384", secrets.token_hex(8), claims(issuer))


def test_random_kids_cause_at_most_one_fetch_per_interval(
    keys: Keys, server: JwksServer, verifier: JwksVerifier, ticker: Ticker
) -> None:
    good = es384(keys, server.issuer)
    assert verifier.subject(good, "GetConfig") == SUBJECT
    for _ in range(50):
        with pytest.raises(InvalidTokenError):
            verifier.subject(_random_kid_token(keys, server.issuer), "GetConfig")
    assert server.fetches == 1
    ticker.now += MIN_FETCH_INTERVAL
    for _ in range(50):
        with pytest.raises(InvalidTokenError):
            verifier.subject(_random_kid_token(keys, server.issuer), "GetConfig")
    assert server.fetches == 2
    # The published keys stay usable while unknown kids are being refused.
    assert verifier.subject(good, "SubmitResults") == SUBJECT
    assert server.fetches == 2


def test_a_rotated_key_is_fetched_once_the_interval_has_passed(
    keys: Keys, server: JwksServer, verifier: JwksVerifier, ticker: Ticker
) -> None:
    assert verifier.subject(es384(keys, server.issuer), "GetConfig") == SUBJECT
    server.serve(
        jwks_document(keys.published() | {"next": (keys.stray_es384.public_key(), "ES384")})
    )
    rotated = signed(keys.stray_es384, "ES384", "next", claims(server.issuer))
    with pytest.raises(InvalidTokenError):
        verifier.subject(rotated, "GetConfig")
    assert server.fetches == 1
    ticker.now += MIN_FETCH_INTERVAL
    assert verifier.subject(rotated, "GetConfig") == SUBJECT
    assert server.fetches == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b"{}"), (200, b"<html>not json</html>"), (200, b"[1, 2]"), (200, b'{"keys": []}')],
    ids=["HTTP 500", "not JSON", "not an object", "no keys"],
)
def test_a_broken_jwks_refuses_tokens_and_is_retried_only_after_the_interval(
    keys: Keys,
    server: JwksServer,
    verifier: JwksVerifier,
    ticker: Ticker,
    status: int,
    body: bytes,
) -> None:
    server.serve_raw(body, status)
    token = es384(keys, server.issuer)
    for _ in range(5):
        with pytest.raises(InvalidTokenError):
            verifier.subject(token, "GetConfig")
    assert server.fetches == 1
    server.serve(jwks_document(keys.published()))
    ticker.now += MIN_FETCH_INTERVAL
    assert verifier.subject(token, "GetConfig") == SUBJECT
    assert server.fetches == 2


def test_an_unreachable_jwks_refuses_tokens_without_failing_construction(
    keys: Keys, trust: ssl.SSLContext
) -> None:
    issuer = f"https://127.0.0.1:{_closed_port()}"
    verifier = JwksVerifier(issuer, ssl_context=trust)
    with pytest.raises(InvalidTokenError, match="no key for kid"):
        verifier.subject(es384(keys, issuer), "GetConfig")
    assert verifier.jwks_url == issuer + "/.well-known/jwks.json"


def test_a_jwks_server_with_an_untrusted_certificate_is_not_used(
    keys: Keys, server: JwksServer
) -> None:
    verifier = JwksVerifier(server.issuer, ssl_context=ssl.create_default_context())
    with pytest.raises(InvalidTokenError, match="CERTIFICATE_VERIFY_FAILED"):
        verifier.subject(rs256(keys, server.issuer), "GetConfig")
    assert server.fetches == 0


def test_nothing_is_fetched_before_the_first_token_and_the_url_can_be_overridden(
    keys: Keys, server: JwksServer, trust: ssl.SSLContext
) -> None:
    verifier = JwksVerifier(
        server.issuer, jwks_url=server.issuer + "/oauth/keys", ssl_context=trust
    )
    assert server.fetches == 0
    assert verifier.subject(rs256(keys, server.issuer), "GetConfig") == SUBJECT
    assert server.paths == ["/oauth/keys"]


@pytest.fixture
def own(tmp_path: Path) -> TokenIssuer:
    return TokenIssuer.load_or_create(tmp_path / "jwt" / "signing.key", OWN_ISSUER)


@pytest.fixture
def composite(own: TokenIssuer, verifier: JwksVerifier) -> TokenVerifier:
    return TokenVerifier(JwtVerifier(own.public_key(), OWN_ISSUER), verifier)


def test_the_composite_accepts_both_issuers(
    keys: Keys, server: JwksServer, own: TokenIssuer, composite: TokenVerifier
) -> None:
    mine, _ = own.mint("own.example.test", 600, datetime.now(UTC))
    for method in METHODS:
        assert composite.subject(mine, method) == "own.example.test"
    assert server.fetches == 0
    assert composite.subject(rs256(keys, server.issuer), "SubmitResults") == SUBJECT
    assert server.fetches == 1


def test_the_composite_routes_by_issuer_and_never_tries_the_other_keys(
    keys: Keys, server: JwksServer, own: TokenIssuer, composite: TokenVerifier
) -> None:
    mine, _ = own.mint("own.example.test", 600, datetime.now(UTC))
    mine_claims = jwt.decode(mine, options={"verify_signature": False})
    forged_as_own = signed(keys.es384, "ES384", "es384", mine_claims)
    own_key_as_external = jwt.encode(
        claims(server.issuer), own._key, algorithm="ES256", headers={"kid": own.kid}
    )
    for token in (
        forged_as_own,
        es384(keys, server.issuer, iss="https://elsewhere.example.test"),
        es384(keys, server.issuer, iss=None),
    ):
        with pytest.raises(InvalidTokenError):
            composite.subject(token, "GetConfig")
    assert server.fetches == 0
    with pytest.raises(InvalidTokenError):
        composite.subject(own_key_as_external, "GetConfig")
    with pytest.raises(InvalidTokenError):
        composite.subject("x" * 3073, "GetConfig")


def test_without_an_external_issuer_only_own_tokens_pass(
    keys: Keys, server: JwksServer, own: TokenIssuer
) -> None:
    composite = TokenVerifier.build(JwtVerifier(own.public_key(), OWN_ISSUER), None)
    mine, _ = own.mint("own.example.test", 600, datetime.now(UTC))
    assert composite.subject(mine, "SubmitResults") == "own.example.test"
    with pytest.raises(InvalidTokenError, match="unknown issuer"):
        composite.subject(es384(keys, server.issuer), "GetConfig")
    assert server.fetches == 0


def test_build_with_an_issuer_verifies_its_tokens(
    keys: Keys, server: JwksServer, own: TokenIssuer, trust: ssl.SSLContext
) -> None:
    composite = TokenVerifier.build(
        JwtVerifier(own.public_key(), OWN_ISSUER), server.issuer, ssl_context=trust
    )
    assert composite.subject(es384(keys, server.issuer), "GetServers") == SUBJECT
    assert server.paths == ["/.well-known/jwks.json"]


def test_the_external_issuer_cannot_be_ntpmon_itself(own: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="own"):
        TokenVerifier(JwtVerifier(own.public_key(), OWN_ISSUER), JwksVerifier(OWN_ISSUER))
