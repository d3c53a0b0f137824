"""Files of the state directory: atomic replacement, reading, and the old RuntimeDirectory move.

Why atomic: the agent runs for months and may be killed at any moment; a reader (another
process, or the agent after a restart) must see the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ntpmon.common.errors import NtpmonError

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
    """Write ``path.tmp``, fsync it, then rename it over ``path`` (key.pem gets mode 0600).

    The tmp file is removed on any error, so a failed write leaves the old file untouched.
    """
    tmp = Path(str(path) + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        if path.name.endswith(KEY_FILE):
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateFileError(f"could not write {str(path)!r}: {exc}") from exc
    _fsync_dir(path.parent)


def _write_all(fd: int, content: bytes) -> None:
    """Finish a write that os.write may have done only in part."""
    view = memoryview(content)
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort (some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
