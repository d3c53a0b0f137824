"""The monitor CA: signs agents' client certificates and monitor-api's server certificate.

The embedded CA (the default, DESIGN.md) keeps an EC P-384 root in ``<data-dir>/ca`` created on
first start (key file mode 0600). :class:`~ntpmon.api.vault.VaultPKI` is the production option
behind the same :class:`CertificateAuthority` protocol.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ntpmon.common.clock import Clock, SystemClock
from ntpmon.common.errors import NtpmonError
from ntpmon.common.privatefile import write_private

ROOT_LIFETIME = timedelta(days=20 * 365)
BACKDATE = timedelta(minutes=5)


class CAError(NtpmonError):
    """The CA cannot be loaded or cannot issue."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf certificate chain (leaf then issuer) and its private key, both PEM text."""

    cert_pem: str
    key_pem: str


class CertificateAuthority(Protocol):
    def root_pem(self) -> str: ...

    def issue_client(self, tls_name: str, lifetime: timedelta) -> IssuedCertificate: ...

    def issue_server(self, names: list[str], lifetime: timedelta) -> IssuedCertificate: ...


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def create_root(
    common_name: str, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA root (also used by tests to make a foreign CA)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return cert, key


class EmbeddedCA:
    """A CA whose root lives in memory (and, through :meth:`load_or_create`, on disk)."""

    def __init__(
        self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, clock: Clock | None = None
    ) -> None:
        self._cert = cert
        self._key = key
        self._clock = clock or SystemClock()

    @classmethod
    def create(cls, common_name: str = "ntpmon monitor CA") -> EmbeddedCA:
        cert, key = create_root(common_name, datetime.now(UTC))
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path, common_name: str = "ntpmon monitor CA") -> EmbeddedCA:
        """Load ``ca.pem``/``ca.key`` from ``directory``, creating them on first start."""
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            try:
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise CAError(f"cannot load the CA from {directory}: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise CAError(f"{key_path} is not an EC private key")
            return cls(cert, key)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca = cls.create(common_name)
        write_private(key_path, _key_pem(ca._key))
        cert_path.write_text(ca.root_pem())
        return ca

    def with_clock(self, clock: Clock) -> EmbeddedCA:
        """The same CA issuing at another time (tests make expired certificates with it)."""
        return EmbeddedCA(self._cert, self._key, clock)

    def root_pem(self) -> str:
        return _pem(self._cert)

    def _issue(
        self,
        common_name: str,
        names: list[str],
        usages: list[x509.ObjectIdentifier],
        lifetime: timedelta,
    ) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        not_after = min(now + lifetime, self._cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA384())
        return IssuedCertificate(_pem(cert) + self.root_pem(), _key_pem(key))

    def issue_client(self, tls_name: str, lifetime: timedelta) -> IssuedCertificate:
        """A monitor's certificate: SAN DNS = its tls_name, EKU clientAuth + serverAuth."""
        return self._issue(
            tls_name,
            [tls_name],
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            lifetime,
        )

    def issue_server(self, names: list[str], lifetime: timedelta) -> IssuedCertificate:
        """monitor-api's own certificate (DNS and IP SANs, EKU serverAuth)."""
        return self._issue(names[0], names, [ExtendedKeyUsageOID.SERVER_AUTH], lifetime)

    def issue_custom(
        self, common_name: str, names: list[str], lifetime: timedelta
    ) -> IssuedCertificate:
        """A client certificate with arbitrary SANs (tests of bad identities use this)."""
        return self._issue(
            common_name,
            names,
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            lifetime,
        )
