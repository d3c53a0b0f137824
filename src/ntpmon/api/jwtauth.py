"""Identity on the JWT-only gRPC listener (api.md §4.2 with DESIGN.md's fixes).

Tokens are the ES256 JWTs the management API mints (:mod:`ntpmon.api.oidc`). Unlike upstream,
``exp`` is required and the scope is checked per method: ``monitor:rpc`` (what ntpmon issues)
allows every method, ``monitor:read`` only GetConfig/GetServers, ``monitor:data`` all three.

The checks that do not depend on who signed the token (length, scope per method, subject) are
functions here so that :mod:`ntpmon.api.jwks` (tokens of an external issuer) applies exactly the
same rules instead of a copy of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ntpmon.api.oidc import AUDIENCE

MAX_TOKEN_BYTES = 3072
MAX_SUBJECT = 128
MAX_MONITOR_CLAIM = 64
READ_SCOPES = frozenset({"monitor:rpc", "monitor:read", "monitor:data"})
WRITE_SCOPES = frozenset({"monitor:rpc", "monitor:data"})
METHOD_SCOPES = {
    "GetConfig": READ_SCOPES,
    "GetServers": READ_SCOPES,
    "SubmitResults": WRITE_SCOPES,
}


class InvalidTokenError(Exception):
    """The token cannot be accepted (the reason is logged, never sent)."""


class Verifier(Protocol):
    """What the RPC listener needs: the identity a token grants for one method."""

    def subject(self, token: str, method: str) -> str:
        """The token's subject, or :class:`InvalidTokenError` if it does not allow ``method``."""
        ...


def bearer_token(authorization: str) -> str:
    """The token of ``Bearer <token>`` (case-sensitive, one space), else empty."""
    return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""


def check_length(token: str) -> None:
    """Refuse empty and oversized tokens before any parsing (or network) work is done on them."""
    if not 0 < len(token.encode()) <= MAX_TOKEN_BYTES:
        raise InvalidTokenError("token length")


def subject_of(
    claims: Mapping[str, Any], method: str, scopes_of_issuer: frozenset[str] = READ_SCOPES
) -> str:
    """The subject of verified ``claims`` if their scope allows ``method``.

    ``scopes_of_issuer`` narrows :data:`METHOD_SCOPES` to the scopes a given issuer may grant
    (an external issuer does not get to use ntpmon's own ``monitor:rpc``).
    """
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidTokenError("scope is not a string")
    allowed = METHOD_SCOPES.get(method, frozenset()) & scopes_of_issuer
    if not set(scope.split()) & allowed:
        raise InvalidTokenError(f"scope does not allow {method}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        raise InvalidTokenError("subject")
    monitor = claims.get("monitor")
    if monitor is not None and (not isinstance(monitor, str) or len(monitor) > MAX_MONITOR_CLAIM):
        raise InvalidTokenError("monitor claim")
    return subject


class JwtVerifier:
    """Checks signature, issuer, audience, expiry, subject and the method's scope."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, issuer: str) -> None:
        self._key = public_key
        self.issuer = issuer

    def subject(self, token: str, method: str) -> str:
        check_length(token)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        return subject_of(claims, method)
