"""Client certificate handling: parse and check a key pair, and when to renew (agent.md §6.2).

Renewal at two thirds of the lifetime leaves a third of it to ride out API outages.

Parsing uses the standard library's OpenSSL (already loaded for HTTPS) and a small DER reader
for the dates, not ``cryptography``: that package alone would cost the long-running
``monitor`` process ~9 MB of RSS (docs/agent.md, Memory footprint). OpenSSL's ``load_cert_chain`` is
also the check TLS itself makes: the key parses and its public half matches the certificate.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from ntpmon.agent.config.derdates import validity
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
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)-----END CERTIFICATE-----", re.DOTALL)


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
    not_before: datetime
    not_after: datetime

    def validity(self, now: datetime) -> tuple[bool, timedelta]:
        return certificate_validity(self.not_before, self.not_after, now)

    def present_from(self, context: ssl.SSLContext) -> None:
        """Make ``context`` present this certificate (mTLS); the pair was checked when parsed."""
        _load_chain(context, self.cert_pem, self.key_pem)


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that never touches a disk (OpenSSL only loads keys from paths)."""
    fd = os.memfd_create("ntppool-agent-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _leaf_dates(cert_pem: bytes) -> tuple[datetime, datetime]:
    """Parse the chain's first certificate with OpenSSL and read its validity dates."""
    match = _PEM_CERT.search(cert_pem)
    if match is None:
        raise CertificateError("could not parse certificate: no PEM certificate found")
    leaf_pem = match.group(0).decode("ascii", errors="replace")
    try:
        ssl.create_default_context(cadata=leaf_pem)  # OpenSSL's full X.509 parse
        return validity(ssl.PEM_cert_to_DER_cert(leaf_pem))
    except (ssl.SSLError, ValueError) as exc:  # DERError is a ValueError
        raise CertificateError(f"could not parse certificate: {exc}") from None


def parse_key_pair(cert_pem: bytes, key_pem: bytes) -> ClientCertificate:
    """Parse the chain's first certificate and the key, and check that they belong together."""
    if not cert_pem.strip() or not key_pem.strip():
        raise CertificateError("empty certificate or key file")
    not_before, not_after = _leaf_dates(cert_pem)
    try:
        _load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_pem, key_pem)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CertificateError("private key does not match the certificate") from None
        raise CertificateError(f"could not parse private key: {exc}") from None
    return ClientCertificate(cert_pem, key_pem, not_before, not_after)


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a PEM chain and key into ``context`` without writing them to disk."""
    with ExitStack() as stack:
        cert_path = stack.enter_context(_memory_file(cert_pem))
        key_path = stack.enter_context(_memory_file(key_pem))
        # an empty password: an encrypted key fails instead of prompting on the terminal
        context.load_cert_chain(cert_path, key_path, password=b"")


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
