"""Files of the state directory: atomic replacement, reading, and the old RuntimeDirectory move.

Why atomic: the agent runs for months and may be killed at any moment; a reader (another
process, or the agent after a restart) must see the old file or the new one, never a torn one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ntpmon.common.errors import NtpmonError
from ntpmon.common.privatefile import write_private

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
CA_FILE = "ca.pem"
DIR_MODE = 0o700


class StateFileError(NtpmonError):
    """The state directory or a file in it cannot be read or written."""


def ensure_dir(path: Path) -> None:
    """Create the per-environment directory (and parents) with mode 0700."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateFileError(f"could not create state directory {str(path)!r}: {exc}") from exc


def tighten_dir(path: Path) -> None:
    """An existing state directory open to other users gets mode 0700 (it holds the key)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateFileError(f"could not access {str(path)!r}: {exc}") from exc
    if mode & 0o077:
        log.warning(
            "state directory was open to other users; setting mode 0700",
            extra={"dir": str(path), "mode": oct(mode)},
        )
        try:
            path.chmod(DIR_MODE)
        except OSError as exc:
            raise StateFileError(f"could not restrict {str(path)!r}: {exc}") from exc


def replace_file(path: Path, content: bytes) -> None:
    """Atomically replace ``path`` with ``content``, mode 0600 from creation.

    Every file here is private: ``state.json`` holds the API key, ``key.pem`` the client key,
    and the certificates are nobody else's business either. A failed write leaves the old
    file untouched.
    """
    try:
        write_private(path, content)
    except OSError as exc:
        raise StateFileError(f"could not write {str(path)!r}: {exc}") from exc


def file_exists(path: Path) -> bool:
    """Whether ``path`` exists; a permission problem is a StateFileError, not False."""
    try:
        path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateFileError(f"could not access {str(path)!r}: {exc}") from exc
    return True


def read_file(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist; other errors are StateFileError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"could not read {str(path)!r}: {exc}") from exc


def migrate_runtime_dir(env_dir: Path, env: str, runtime_dir: str | None) -> bytes | None:
    """Copy state from ``$RUNTIME_DIRECTORY/<env>/`` (lost on reboot) into ``env_dir`` (§5.5).

    Returns the migrated ``state.json`` bytes, or None when there was nothing to migrate.
    Old files are left in place; errors are logged at debug level and ignored.
    """
    if not runtime_dir or file_exists(env_dir / STATE_FILE):
        return None
    old_dir = Path(runtime_dir) / env
    old_state = old_dir / STATE_FILE
    try:
        if not old_state.is_file():
            return None
        content = old_state.read_bytes()
        ensure_dir(env_dir)
        replace_file(env_dir / STATE_FILE, content)
    except (OSError, NtpmonError) as exc:
        log.debug("state migration failed", extra={"from": str(old_dir), "error": str(exc)})
        return None
    for name in (CERT_FILE, KEY_FILE):
        src = old_dir / name
        if not src.exists():
            continue
        try:
            replace_file(env_dir / name, src.read_bytes())
        except (OSError, NtpmonError) as exc:
            log.debug("could not migrate file", extra={"file": str(src), "error": str(exc)})
    log.info("migrated state from runtime directory", extra={"from": str(old_dir)})
    return content
