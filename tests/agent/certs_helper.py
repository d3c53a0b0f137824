"""Real X.509 material for agent tests: monitor-api's CA issuing server and client certificates,
and self-signed RSA pairs (agent.md §19.4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ntpmon.api.ca import BACKDATE, EmbeddedCA
from ntpmon.common.clock import FixedClock


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes


def self_signed(
    not_before: timedelta = timedelta(hours=-1),
    not_after: timedelta = timedelta(hours=24),
    *,
    now: datetime | None = None,
) -> Issued:
    """Self-signed RSA-2048 with a PKCS#8 key (agent.md §19.4)."""
    now = now or datetime.now(UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


class TestCA:
    """monitor-api's embedded CA, issuing at chosen times (bytes in, bytes out for the tests)."""

    __test__ = False

    def __init__(self) -> None:
        self.ca = EmbeddedCA.create("ntpmon test CA")
        self.pem = self.ca.root_pem().encode()

    def issue(
        self,
        name: str,
        *,
        server: bool = False,
        lifetime: timedelta = timedelta(days=1),
        start: timedelta = timedelta(hours=-1),
    ) -> Issued:
        """A client (or, with ``server``, a loopback server) certificate valid from ``start``."""
        ca = self.ca.with_clock(FixedClock(datetime.now(UTC) + start + BACKDATE))
        if server:
            issued = ca.issue_server([name, "localhost", "127.0.0.1", "::1"], lifetime)
        else:
            issued = ca.issue_client(name, lifetime)
        return Issued(issued.cert_pem.encode(), issued.key_pem.encode())

    def write(self, directory: Path) -> Path:
        path = directory / "test-ca.pem"
        path.write_bytes(self.pem)
        return path
