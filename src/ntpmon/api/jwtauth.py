"""Identity on the JWT-only gRPC listener (api.md §4.2 with DESIGN.md's fixes).

Tokens are the ES256 JWTs the management API mints (:mod:`ntpmon.api.oidc`). Unlike upstream,
``exp`` is required and the scope is checked per method: ``monitor:rpc`` (what ntpmon issues)
allows every method, ``monitor:read`` only GetConfig/GetServers, ``monitor:data`` all three.
"""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ntpmon.api.oidc import AUDIENCE

MAX_TOKEN_BYTES = 3072
MAX_SUBJECT = 128
READ_SCOPES = frozenset({"monitor:rpc", "monitor:read", "monitor:data"})
WRITE_SCOPES = frozenset({"monitor:rpc", "monitor:data"})
METHOD_SCOPES = {
    "GetConfig": READ_SCOPES,
    "GetServers": READ_SCOPES,
    "SubmitResults": WRITE_SCOPES,
}


class InvalidTokenError(Exception):
    """The token cannot be accepted (the reason is logged, never sent)."""


def bearer_token(authorization: str) -> str:
    """The token of ``Bearer <token>`` (case-sensitive, one space), else empty."""
    return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""


class JwtVerifier:
    """Checks signature, issuer, audience, expiry, subject and the method's scope."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, issuer: str) -> None:
        self._key = public_key
        self._issuer = issuer

    def subject(self, token: str, method: str) -> str:
        if not 0 < len(token.encode()) <= MAX_TOKEN_BYTES:
            raise InvalidTokenError("token length")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from None
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & METHOD_SCOPES.get(method, frozenset()):
            raise InvalidTokenError(f"scope does not allow {method}")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
            raise InvalidTokenError("subject")
        return subject
