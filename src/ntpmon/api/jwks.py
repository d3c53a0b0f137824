"""Tokens of an external issuer (upstream's website) on monitor-api, verified with its JWKS.

api.md §4.2 with DESIGN.md's fixes: ES384 or RS256 only, the key picked by the header ``kid``
from ``<issuer>/.well-known/jwks.json``, ``iss`` equal to the issuer, ``aud`` containing
``monitor-api``, ``exp`` required, ``nbf`` honoured, scope checked per method exactly as for
ntpmon's own tokens (:func:`ntpmon.api.jwtauth.subject_of`) except that an external issuer can only
grant ``monitor:read`` and ``monitor:data``.

The issuer is untrusted input as far as availability goes: anyone can send a token with a random
``kid``, and the issuer can be down. So the JWKS is fetched lazily (the server starts without it),
kept for :data:`JWKS_LIFESPAN`, and every network fetch (periodic, unknown ``kid`` or retry after
a failure) goes through one gate that allows at most one per ``min_fetch_interval``. A token that
cannot be verified because of the JWKS is refused like any other bad token.

:class:`TokenVerifier` is what the listener calls: it routes a token to ntpmon's own
:class:`~ntpmon.api.jwtauth.JwtVerifier` or to :class:`JwksVerifier` by the token's (unverified)
``iss``, so no key is ever tried on a token meant for another issuer.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK, PyJWKClient, PyJWKClientConnectionError

from ntpmon import __version__
from ntpmon.api.jwtauth import InvalidTokenError, JwtVerifier, check_length, subject_of
from ntpmon.api.oidc import AUDIENCE

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
JWKS_LIFESPAN = 3600.0  # upstream refreshes hourly
MIN_FETCH_INTERVAL = 30.0
FETCH_TIMEOUT = 5.0  # verifications wait behind a fetch (PyJWKClient holds its lock meanwhile)
MAX_KID = 128
EXTERNAL_SCOPES = frozenset({"monitor:read", "monitor:data"})
ALGORITHMS = frozenset({"ES384", "RS256"})


def _key_fits(alg: str, jwk: PyJWK) -> bool:
    """Whether ``jwk`` is the kind of key ``alg`` needs (a P-384 EC key, an RSA key).

    A published key of another type or curve under the token's kid is refused whatever the JWK's
    own ``alg`` says: that is the key-type/algorithm confusion an attacker would try.
    """
    if jwk.algorithm_name != alg:
        return False
    if alg == "ES384":
        return isinstance(jwk.key, ec.EllipticCurvePublicKey) and isinstance(
            jwk.key.curve, ec.SECP384R1
        )
    return alg == "RS256" and isinstance(jwk.key, rsa.RSAPublicKey)


def default_jwks_url(issuer: str) -> str:
    """Where upstream's website publishes its keys, relative to the issuer URL."""
    return issuer.rstrip("/") + JWKS_PATH


class _GatedJwkClient(PyJWKClient):
    """PyJWKClient whose network fetches are rate-limited, successful or not.

    PyJWKClient's own cooldown (PyJWT 2.14+) only starts after a *successful* fetch, so while the
    issuer is down every token would trigger a fetch. Here every attempt starts the interval; a
    fetch refused by the gate fails like an unreachable issuer, and the cached key set (kept by
    PyJWKClient on errors) still serves the keys it has.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        lifespan: float,
        min_fetch_interval: float,
        timeout: float,
        monotonic: Callable[[], float],
    ) -> None:
        super().__init__(
            url,
            cache_jwk_set=True,
            lifespan=lifespan,
            headers={
                "User-Agent": f"ntpmon-monitor-api/{__version__}",
                "Accept": "application/json",
            },
            timeout=timeout,
            ssl_context=ssl_context,
            cooldown_duration=0,  # the gate below replaces it
        )
        self._min_fetch_interval = min_fetch_interval
        self._monotonic = monotonic
        self._gate = threading.Lock()
        self._next_fetch = float("-inf")

    def fetch_data(self) -> Any:
        with self._gate:
            now = self._monotonic()
            if now < self._next_fetch:
                raise PyJWKClientConnectionError("JWKS fetch rate-limited")
            self._next_fetch = now + self._min_fetch_interval
        try:
            return super().fetch_data()
        except Exception as exc:
            log.warning("JWKS fetch failed", extra={"url": self.uri, "reason": str(exc)})
            raise


class JwksVerifier:
    """Verifies tokens of one external issuer with the keys it publishes (api.md §4.2).

    Nothing is fetched at construction, so monitor-api starts while the issuer is unreachable.
    ``ssl_context`` is the trust for the JWKS URL (default: the system roots); ``monotonic`` is
    the clock of the fetch gate, injectable so tests need not sleep.
    """

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        lifespan: float = JWKS_LIFESPAN,
        min_fetch_interval: float = MIN_FETCH_INTERVAL,
        timeout: float = FETCH_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not issuer:
            raise ValueError("the external JWT issuer must not be empty")
        self.issuer = issuer
        self._client = _GatedJwkClient(
            jwks_url or default_jwks_url(issuer),
            ssl_context=ssl_context,
            lifespan=lifespan,
            min_fetch_interval=min_fetch_interval,
            timeout=timeout,
            monotonic=monotonic,
        )

    @property
    def jwks_url(self) -> str:
        return self._client.uri

    def subject(self, token: str, method: str) -> str:
        check_length(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        # Algorithm and kid are checked before the key lookup, so tokens that can never be
        # accepted (HS256, none, ...) cost no JWKS fetch.
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidTokenError(f"algorithm {alg!r} not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID:
            raise InvalidTokenError("kid")
        jwk = self._key(kid)
        if not _key_fits(alg, jwk):
            raise InvalidTokenError(f"key {kid!r} is not an {alg} key")
        try:
            claims = jwt.decode(
                token,
                jwk.key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={
                    "require": ["exp", "sub", "iss", "aud"],
                    "verify_iat": False,  # api.md §4.2: iat is not checked (clock skew)
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        return subject_of(claims, method, EXTERNAL_SCOPES)

    def _key(self, kid: str) -> PyJWK:
        """The published key ``kid``; any failure to get it (network, TLS, bad JWKS) refuses."""
        try:
            return self._client.get_signing_key(kid)
        except (jwt.PyJWTError, ValueError, OSError, http.client.HTTPException) as exc:
            raise InvalidTokenError(f"no key for kid {kid!r}: {exc}") from None


class TokenVerifier:
    """ntpmon's own tokens and, when configured, an external issuer's, routed by ``iss``.

    The unverified ``iss`` only chooses the verifier; that verifier then checks the signature and
    ``iss`` again. A token naming any other issuer is refused without touching a key.
    """

    def __init__(self, own: JwtVerifier, external: JwksVerifier | None = None) -> None:
        if external is not None and external.issuer == own.issuer:
            raise ValueError(f"the external JWT issuer {external.issuer!r} is ntpmon's own")
        self._by_issuer: dict[str, JwtVerifier | JwksVerifier] = {own.issuer: own}
        if external is not None:
            self._by_issuer[external.issuer] = external

    @classmethod
    def build(
        cls,
        own: JwtVerifier,
        issuer: str | None,
        jwks_url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> TokenVerifier:
        """From the CLI's ``--jwt-issuer`` / ``--jwks-url`` (no issuer: own tokens only)."""
        external = JwksVerifier(issuer, jwks_url, ssl_context=ssl_context) if issuer else None
        return cls(own, external)

    def subject(self, token: str, method: str) -> str:
        check_length(token)
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        issuer = claims.get("iss")
        verifier = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if verifier is None:
            raise InvalidTokenError(f"unknown issuer {issuer!r}")
        return verifier.subject(token, method)


def external_tokens(
    own: JwtVerifier, issuer: str, jwks_url: str = "", ca_file: Path | None = None
) -> TokenVerifier:
    """The verifier ``monitor-api server`` uses: its own tokens, plus ``issuer``'s when set.

    ``ca_file`` replaces the system roots for the JWKS fetch (an issuer on a private CA).
    """
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    return TokenVerifier.build(own, issuer or None, jwks_url or None, context)
