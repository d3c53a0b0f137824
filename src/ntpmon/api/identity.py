"""Who is calling: the monitor name in the client certificate (api.md §4.1).

The handshake verifies the certificate against the trusted monitor CAs; the name check runs
before each RPC on the certificate it verified (as DER from the TLS layer, or PEM).
"""

from __future__ import annotations

from cryptography import x509

from ntpmon.common.environments import is_valid_monitor_name

MISSING_NAME = "certificate missing required DNS suffix"


def dns_names(cert_data: bytes) -> list[str]:
    """The DNS SubjectAltNames of a PEM or DER certificate, in certificate order (CN ignored)."""
    if cert_data.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(cert_data)
    else:
        cert = x509.load_der_x509_certificate(cert_data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))


def monitor_name_from_cert(cert_data: bytes | None) -> str | None:
    """The first DNS SAN (of a PEM or DER certificate) that is a valid monitor name, or None."""
    if not cert_data:
        return None
    try:
        names = dns_names(cert_data)
    except ValueError:
        return None
    return next((n for n in names if is_valid_monitor_name(n)), None)
