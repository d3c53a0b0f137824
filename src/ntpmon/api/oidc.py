"""JWTs the management API hands to agents (contract §5) and their JWKS.

ES256 with a P-256 key kept in the data directory; ``kid`` is derived from the public key so a
key change is visible to verifiers. Claims: ``sub`` = tls_name, ``aud`` = ``monitor-api``,
``iss`` = the management base URL, ``scope`` = ``monitor:rpc``, ``iat``, ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ntpmon.common.privatefile import write_private

AUDIENCE = "monitor-api"
SCOPE = "monitor:rpc"
MAX_EXPIRES_IN = 3600


class TokenIssuer:
    """Signs agent tokens and publishes the matching JWKS."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str) -> None:
        self._key = key
        self.issuer = issuer
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")

    @classmethod
    def load_or_create(cls, path: Path, issuer: str) -> TokenIssuer:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} is not an EC key")
            return cls(key, issuer)
        key = ec.generate_private_key(ec.SECP256R1())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return cls(key, issuer)

    def mint(self, subject: str, expires_in: int, now: datetime) -> tuple[str, int]:
        """A token for ``subject``; ``expires_in`` is capped at one hour (0 or less → 1 h)."""
        lifetime = MAX_EXPIRES_IN if expires_in <= 0 else min(expires_in, MAX_EXPIRES_IN)
        iat = int(now.timestamp())
        claims = {
            "sub": subject,
            "aud": AUDIENCE,
            "iss": self.issuer,
            "scope": SCOPE,
            "iat": iat,
            "exp": iat + lifetime,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
        return token, lifetime

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        jwk |= {"kid": self.kid, "use": "sig", "alg": "ES256"}
        return {"keys": [jwk]}
