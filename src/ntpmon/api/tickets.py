"""Work tickets: HMAC-SHA256 over (monitor id, batch id, server IP) with versioned keys (§7.2).

``ticket = "<version>-" + base64url_nopad(HMAC-SHA256(secret, "<monitor>|<batch>|" + ip))``.
Verification recomputes the whole ticket text with the version it names and compares it in
constant time, so non-canonical spellings, unknown versions and garbage are all just invalid.
Where the secrets live is a :class:`KeyStore`; the signer never cares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol


class KeyStore(Protocol):
    """Versioned HMAC secrets: the newest signs, every retrievable version verifies."""

    def newest(self) -> tuple[int, bytes]: ...

    def secret(self, version: int) -> bytes | None: ...


class StaticKeyring:
    """Secrets given up front: ``MONITOR_TICKET_KEYS="1:secretA,2:secretB"`` or a key file."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise ValueError("a ticket keyring needs at least one key")
        if any(v <= 0 for v in keys):
            raise ValueError("ticket key versions must be positive")
        self._keys = dict(keys)

    @classmethod
    def parse(cls, spec: str) -> StaticKeyring:
        """Read ``ver:secret[,ver:secret]``; raises ValueError on a malformed entry."""
        keys: dict[int, bytes] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            version, sep, secret = part.partition(":")
            if not sep or not version.isdigit() or not secret:
                raise ValueError("ticket keys must look like 'version:secret[,version:secret]'")
            keys[int(version)] = secret.encode()
        return cls(keys)

    def newest(self) -> tuple[int, bytes]:
        version = max(self._keys)
        return version, self._keys[version]

    def secret(self, version: int) -> bytes | None:
        return self._keys.get(version)


def _message(monitor_id: int, batch_id: str, ip: bytes) -> bytes:
    return f"{monitor_id}|{batch_id}|".encode("ascii") + ip


def _mac(secret: bytes, message: bytes) -> str:
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TicketSigner:
    """Signs and verifies tickets with the keys of one :class:`KeyStore`."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def sign(self, monitor_id: int, batch_id: str, ip: bytes) -> bytes:
        version, secret = self._keys.newest()
        return f"{version}-{_mac(secret, _message(monitor_id, batch_id, ip))}".encode("ascii")

    def verify(self, ticket: bytes, monitor_id: int, batch_id: str, ip: bytes) -> bool:
        head, sep, _ = ticket.partition(b"-")
        if not sep or not head.isdigit() or len(head) > 9:
            return False
        version = int(head)
        newest, _ = self._keys.newest()
        if version <= 0 or version > newest:
            return False
        secret = self._keys.secret(version)
        if secret is None:
            return False
        expected = f"{version}-{_mac(secret, _message(monitor_id, batch_id, ip))}"
        return hmac.compare_digest(expected.encode("ascii"), ticket)
