"""Where ticket secrets come from: ``MONITOR_TICKET_KEYS``, else a key file in the data dir.

The key file keeps every version (older tickets still verify) and gets a new newest version
when the current one is older than :data:`ROTATE_AFTER` at start-up, as upstream's Vault
rotation does every 10 hours. Vault KV is the production option (:mod:`ntpmon.api.vault`,
``monitor-api server --ticket-keys vault``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from ntpmon.api.tickets import KeyStore, StaticKeyring
from ntpmon.common.clock import Clock
from ntpmon.common.errors import NtpmonError
from ntpmon.common.privatefile import write_private

log = logging.getLogger(__name__)

ROTATE_AFTER = timedelta(hours=10)
CHECK_EVERY = timedelta(hours=2)
ENV_KEYS = "MONITOR_TICKET_KEYS"


class TicketKeyError(NtpmonError):
    """The ticket keys cannot be read or written."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One version in the key file."""

    version: int
    secret: str
    created: int


def _read_entries(path: Path) -> list[KeyEntry]:
    if not path.exists():
        return []
    try:
        return [
            KeyEntry(int(e["version"]), str(e["secret"]), int(e["created"]))
            for e in json.loads(path.read_text())["keys"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TicketKeyError(f"cannot read ticket keys from {path}: {exc}") from None


def load_key_file(
    path: Path, now: datetime, rotate_after: timedelta = ROTATE_AFTER
) -> StaticKeyring:
    """Read (creating or rotating as needed) ``{"keys":[{"version","secret","created"}]}``."""
    entries = _read_entries(path)
    newest = max(entries, key=lambda e: e.version, default=None)
    if newest is None or now.timestamp() - newest.created > rotate_after.total_seconds():
        version = newest.version + 1 if newest else 1
        entries.append(KeyEntry(version, secrets.token_urlsafe(16), int(now.timestamp())))
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"keys": [dataclasses.asdict(e) for e in entries]}
        write_private(path, json.dumps(doc, indent=1))
    return StaticKeyring({e.version: e.secret.encode() for e in entries})


@runtime_checkable
class RotatingKeyStore(KeyStore, Protocol):
    """A key store the server asks every :data:`CHECK_EVERY` whether a new version is due."""

    def maybe_rotate(self) -> bool: ...


class FileKeyring:
    """The data-dir key file as a :class:`~ntpmon.api.tickets.KeyStore` that can rotate live.

    :meth:`maybe_rotate` is called periodically (every :data:`CHECK_EVERY`); a new version is
    written when the newest is older than ``rotate_after``, and all versions keep verifying.
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        rotate_after: timedelta = ROTATE_AFTER,
        *,
        follower: bool = False,
    ) -> None:
        self._path = path
        self._clock = clock
        self._rotate_after = rotate_after
        self._follower = follower
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._ring = self._load()

    @classmethod
    def follower_of(cls, path: Path, clock: Clock) -> FileKeyring:
        """A read-only view for a worker process: another process owns rotation.

        It re-reads the file whenever the file changed since it last read it (see
        :meth:`_follow`), so a version the owner rotated to verifies here at once.
        """
        return cls(path, clock, follower=True)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _load(self) -> StaticKeyring:
        if not self._follower:
            return load_key_file(self._path, self._clock.now(), self._rotate_after)
        entries = _read_entries(self._path)
        if not entries:
            raise TicketKeyError(f"no ticket keys in {self._path}")
        return StaticKeyring({e.version: e.secret.encode() for e in entries})

    def newest(self) -> tuple[int, bytes]:
        with self._lock:
            if self._follower:
                self._follow()
            return self._ring.newest()

    def secret(self, version: int) -> bytes | None:
        with self._lock:
            return self._ring.secret(version)

    def _follow(self) -> None:
        """Re-read the key file if it changed (one ``stat``), keeping the keys held if the new
        content is unreadable.

        Ticket verification asks for the newest version first, so a version the owner
        rotated to is known before its first ticket is checked.
        """
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp  # a broken file is read once, not once per ticket
        try:
            self._ring = self._load()
        except TicketKeyError as exc:
            log.warning("keeping the ticket keys held", extra={"reason": str(exc)})

    def maybe_rotate(self) -> bool:
        """Re-read the file, rotating if due (never as a follower); True when a new version
        became the newest."""
        with self._lock:
            before = self._ring.newest()[0]
            self._stamp = self._file_stamp()
            self._ring = self._load()
            return self._ring.newest()[0] != before


def keyring_for(
    data_dir: Path,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    *,
    follower: bool = False,
    remote: Callable[[], KeyStore] | None = None,
) -> KeyStore:
    """``MONITOR_TICKET_KEYS`` when set (tests, several replicas; Vault is then not contacted),
    else ``remote()`` when given (Vault KV, :func:`ntpmon.api.vault.vault_keyring`), else the
    data-dir key file. A ``follower`` (a worker process of a server) never creates or rotates
    keys."""
    environ = os.environ if environ is None else environ
    spec = environ.get(ENV_KEYS, "")
    if spec:
        try:
            return StaticKeyring.parse(spec)
        except ValueError as exc:
            raise TicketKeyError(f"{ENV_KEYS}: {exc}") from None
    if remote is not None:
        return remote()
    path = data_dir / "ticket-keys.json"
    return FileKeyring.follower_of(path, clock) if follower else FileKeyring(path, clock)
