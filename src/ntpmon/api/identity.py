"""Who is calling: the monitor name in the client certificate (api.md §4.1).

grpcio cannot hook the TLS handshake, so the name check runs before each RPC on the
certificate the handshake already verified against the monitor CA.
"""

from __future__ import annotations

from cryptography import x509

from ntpmon.common.environments import is_valid_monitor_name

MISSING_NAME = "certificate missing required DNS suffix"


def dns_names(cert_pem: bytes) -> list[str]:
    """The DNS SubjectAltNames of a PEM certificate, in certificate order (CN is ignored)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))


def monitor_name_from_cert(cert_pem: bytes | None) -> str | None:
    """The first DNS SAN that is a valid monitor name, or None."""
    if not cert_pem:
        return None
    try:
        names = dns_names(cert_pem)
    except ValueError:
        return None
    return next((n for n in names if is_valid_monitor_name(n)), None)
