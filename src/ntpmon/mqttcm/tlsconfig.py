"""TLS for broker connections: trust one CA bundle, present our certificate (agent.md §13.2,
api.md §10.3). Verification is never disabled (DESIGN.md)."""

from __future__ import annotations

import ssl
from pathlib import Path


def broker_tls_context(
    ca_pem: str | None = None,
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A client context that verifies the broker against ``ca_pem`` (system roots when None)
    and, when given, presents ``cert_file``/``key_file`` as its client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context
