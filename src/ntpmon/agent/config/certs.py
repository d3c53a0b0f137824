"""Client certificate handling: parse and check a key pair, and when to renew (agent.md §6.2).

Renewal at two thirds of the lifetime leaves a third of it to ride out API outages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ntpmon.agent.config.statefile import data_sha
from ntpmon.common.errors import NtpmonError

__all__ = [
    "CertificateError",
    "ClientCertificate",
    "NoCertificateError",
    "certificate_validity",
    "data_sha",
    "parse_key_pair",
]

MAX_RECHECK = timedelta(hours=2)


class CertificateError(NtpmonError):
    """A certificate or key that cannot be used (unparseable, mismatched, expired)."""


class NoCertificateError(CertificateError):
    """No certificate has been loaded."""

    def __init__(self, message: str = "no certificate") -> None:
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A parsed certificate chain with its matching private key."""

    cert_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    def validity(self, now: datetime) -> tuple[bool, timedelta]:
        return certificate_validity(self.not_before, self.not_after, now)


def _public_bytes(key: PrivateKeyTypes | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_key_pair(cert_pem: bytes, key_pem: bytes) -> ClientCertificate:
    """Parse the chain's first certificate and the key, and check that they belong together."""
    if not cert_pem.strip() or not key_pem.strip():
        raise CertificateError("empty certificate or key file")
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"could not parse certificate: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"could not parse private key: {exc}") from None
    if _public_bytes(key) != _public_bytes(leaf):
        raise CertificateError("private key does not match the certificate")
    return ClientCertificate(cert_pem, key_pem, leaf)


def certificate_validity(
    not_before: datetime, not_after: datetime, now: datetime
) -> tuple[bool, timedelta]:
    """(usable without renewal, time until the next check), per §6.2.

    Renewal is due once two thirds of the lifetime have passed; ``not_before`` in the future
    does not invalidate a certificate (clock skew is tolerated).
    """
    lifetime = not_after - not_before
    third = lifetime / 3
    renew_after = not_after - third
    if now > renew_after:
        return False, max(min(third, MAX_RECHECK), timedelta(seconds=1))
    return True, (renew_after - now) + timedelta(seconds=1)
