"""Where ticket secrets come from: ``MONITOR_TICKET_KEYS``, else a key file in the data dir.

The key file keeps every version (older tickets still verify) and gets a new newest version
when the current one is older than :data:`ROTATE_AFTER` at start-up, as upstream's Vault
rotation does every 10 hours. Vault KV is the production option (:mod:`ntpmon.api.vault`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from ntpmon.api.tickets import StaticKeyring
from ntpmon.common.errors import NtpmonError

ROTATE_AFTER = timedelta(hours=10)
ENV_KEYS = "MONITOR_TICKET_KEYS"


class TicketKeyError(NtpmonError):
    """The ticket keys cannot be read or written."""


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


def load_key_file(
    path: Path, now: datetime, rotate_after: timedelta = ROTATE_AFTER
) -> StaticKeyring:
    """Read (creating or rotating as needed) ``{"keys":[{"version","secret","created"}]}``."""
    entries: list[dict[str, object]] = []
    if path.exists():
        try:
            entries = json.loads(path.read_text())["keys"]
            keys = {int(e["version"]): str(e["secret"]).encode() for e in entries}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TicketKeyError(f"cannot read ticket keys from {path}: {exc}") from None
    else:
        keys = {}
    newest = max(entries, key=lambda e: int(e["version"]), default=None)  # type: ignore[arg-type]
    if newest is None or now.timestamp() - float(newest["created"]) > rotate_after.total_seconds():  # type: ignore[arg-type]
        version = (int(newest["version"]) + 1) if newest else 1  # type: ignore[call-overload]
        secret = secrets.token_urlsafe(16)
        entries.append({"version": version, "secret": secret, "created": int(now.timestamp())})
        keys[version] = secret.encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps({"keys": entries}, indent=1))
    return StaticKeyring(keys)


def keyring_for(
    data_dir: Path, now: datetime, environ: Mapping[str, str] | None = None
) -> StaticKeyring:
    """``MONITOR_TICKET_KEYS`` when set (tests, several replicas), else the data-dir key file."""
    environ = os.environ if environ is None else environ
    spec = environ.get(ENV_KEYS, "")
    if spec:
        try:
            return StaticKeyring.parse(spec)
        except ValueError as exc:
            raise TicketKeyError(f"{ENV_KEYS}: {exc}") from None
    return load_key_file(data_dir / "ticket-keys.json", now)
