"""The listener's TLS: the operator's certificate files, re-read when they change on disk.

``--tls.cert``/``--tls.key`` name PEM files that cert-manager, Vault agent or certbot replace
in place. Each new connection asks :class:`ReloadingContext` for its TLS object; at most once
per ``check_every`` seconds it compares the files' modification times and sizes, and builds a
new context when they changed. A half-written or mismatched pair is logged and the previous
certificate kept, so a rotation can never take the listener down.

Client certificates are optional at the TLS layer (a JWT may stand in for one), but one that
is presented must chain to a trusted monitor CA or the handshake fails.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

ALPN = ("h2", "http/1.1")
CHECK_EVERY = 1.0


class TlsConfigError(NtpmonError):
    """The certificate, key or client CA files cannot be used."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the listener's certificate lives and which CAs vouch for clients."""

    cert_file: Path
    key_file: Path
    client_ca_files: Sequence[Path] = ()
    client_ca_pem: str = ""  # e.g. the embedded CA's root, beside or instead of the files
    alpn: Sequence[str] = field(default=ALPN)

    def client_ca_bundle(self) -> str:
        """Every trusted client CA as one PEM text; empty when none is configured."""
        parts = [self.client_ca_pem] if self.client_ca_pem else []
        for path in self.client_ca_files:
            try:
                parts.append(Path(path).read_text())
            except OSError as exc:
                raise TlsConfigError(f"client CA {path}: {exc.strerror or exc}") from None
        return "\n".join(p.strip() + "\n" for p in parts if p.strip())


def build_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context for ``files``; raises :class:`TlsConfigError` with a one-line reason."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.cert_file), str(files.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"certificate {files.cert_file} / key {files.key_file}: {_reason(exc)}"
        ) from None
    bundle = files.client_ca_bundle()
    if bundle:
        try:
            context.load_verify_locations(cadata=bundle)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsConfigError(f"client CA: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(list(files.alpn))
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _stamp(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in (files.cert_file, files.key_file):
        try:
            st = os.stat(path)
        except OSError:
            stamps.append((0, 0))
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


class ReloadingContext(ssl.SSLContext):
    """Given to asyncio as the server's context; every connection gets the current one.

    asyncio makes each connection's TLS object with ``wrap_bio``; this context hands that to
    the newest good context built from the files, so a replaced certificate takes effect for
    the next connection without a restart (api.md §3.4).
    """

    files: TlsFiles
    check_every: float

    def __new__(cls, files: TlsFiles, check_every: float = CHECK_EVERY) -> ReloadingContext:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.files = files
        self.check_every = check_every
        self._current = build_context(files)  # start-up: a bad file is a clear error
        self._stamp = _stamp(files)
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        return self

    def __init__(self, files: TlsFiles, check_every: float = CHECK_EVERY) -> None:
        """All set up in ``__new__`` (``ssl.SSLContext`` is built there)."""

    def current(self) -> ssl.SSLContext:
        """The context for a new connection, rebuilt first when the files changed."""
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self._current
        with self._lock:
            self._checked = now
            stamp = _stamp(self.files)
            if stamp != self._stamp:
                try:
                    self._current = build_context(self.files)
                except TlsConfigError as exc:
                    log.warning("keeping the previous TLS certificate", extra={"error": str(exc)})
                else:
                    self._stamp = stamp
                    log.info("TLS certificate reloaded", extra={"cert": str(self.files.cert_file)})
        return self._current

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        return self.current().wrap_bio(*args, **kwargs)
