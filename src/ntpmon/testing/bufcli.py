"""The Buf CLI (``buf``, built on connect-go) for tests that call monitor-api as Go clients do.

``buf curl`` is a client this project did not write, so a test that passes with it shows the
listener speaks Connect, gRPC and gRPC-Web the way connect-go expects, not just the way our own
clients do. ``make test`` has to work on a fresh machine, so :func:`buf_binary` finds ``buf``
on ``PATH`` or installs the npm package ``@bufbuild/buf`` into a cache directory once (Node and
npm from Debian when they are missing too, :mod:`ntpmon.testing.debian`). pytest-xdist runs
several workers at once, so the install happens under an exclusive file lock and the second
worker finds it done.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ntpmon.common.errors import NtpmonError
from ntpmon.testing.debian import MissingToolError, ensure_command

PACKAGE = "@bufbuild/buf"
INSTALL_TIMEOUT_S = 600.0


class BufError(NtpmonError):
    """``buf`` is not on PATH and could not be installed."""


def cache_dir() -> Path:
    """Where the npm install lives: ``$XDG_CACHE_HOME/ntpmon/buf`` or ``~/.cache/ntpmon/buf``
    (outside the work tree, so every checkout and ``make clean`` share one install)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ntpmon" / "buf"


def _installed(directory: Path) -> Path | None:
    """The native binary of an earlier install (skipping the Node wrapper saves a Node start
    per call), else the wrapper; None when nothing usable is there."""
    modules = directory / "node_modules" / "@bufbuild"
    native = sorted(modules.glob("buf-*/bin/buf")) if modules.is_dir() else []
    for candidate in [*native, directory / "node_modules" / ".bin" / "buf"]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed programs, arguments built here
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BufError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise BufError(f"{what} failed (exit {done.returncode}): {tail}")


def _ensure_npm() -> str:
    """``npm``, installed from Debian (``npm``, which brings ``nodejs``) when it is missing."""
    try:
        return ensure_command("npm", package="npm")
    except MissingToolError as exc:
        raise BufError(f"buf needs npm: {exc}") from None


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock beside the install, held while checking and installing."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / "buf.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def buf_binary(directory: Path | None = None) -> Path:
    """A runnable ``buf``: from PATH, from the cache, or freshly installed into the cache.

    Raises :class:`BufError` with the reason when none can be had.
    """
    on_path = shutil.which("buf")
    if on_path:
        return Path(on_path)
    target = directory or cache_dir()
    found = _installed(target)
    if found:
        return found
    with _locked(target):
        found = _installed(target)  # another worker may have finished while we waited
        if found:
            return found
        npm = _ensure_npm()
        _run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(target), PACKAGE],
            f"npm install {PACKAGE} into {target}",
        )
        found = _installed(target)
    if found is None:
        raise BufError(f"npm installed {PACKAGE} into {target} but no buf binary is there")
    return found
