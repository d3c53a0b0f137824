"""Debian packages tests need, installed on first use so `make test` works on a fresh machine.

The README promises that a fresh clone passes ``make test`` with no other step, yet some tests
drive real programs the project did not write: chromium (status pages), chronyd (a real NTP
peer), mosquitto (a private broker), ``systemd-analyze`` (the deployment units) and npm (for
``buf``). :func:`ensure_command` finds such a program or, when running as root on a machine
with ``apt-get``, installs its Debian package. Anywhere else it raises :class:`MissingToolError`
naming the package, so the failure says what to do. pytest-xdist runs several workers, so the
install happens under an exclusive file lock (``apt-get`` would fail on dpkg's own lock) and a
second worker finds the program already there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ntpmon.common.errors import NtpmonError

INSTALL_TIMEOUT_S = 900.0
# sbin directories are not on every user's PATH (chronyd, mosquitto live there)
EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
LOCK_FILE = Path(tempfile.gettempdir()) / "ntpmon-apt-install.lock"


class MissingToolError(NtpmonError):
    """A program a test needs is missing and could not be installed."""


def find_command(name: str) -> str | None:
    """``name`` on PATH or in an sbin directory, else None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(EXTRA_DIRS))


def _apt_get(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, package names from our callers
            ["apt-get", *args],  # noqa: S607 - apt-get is where Debian puts it
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingToolError(f"apt-get {' '.join(args)} failed: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise MissingToolError(f"apt-get {' '.join(args)} failed (exit {done.returncode}): {tail}")


def ensure_command(*names: str, package: str) -> str:
    """The path of the first of ``names`` found, installing Debian's ``package`` if none is.

    Installs only as root with ``apt-get`` present; otherwise raises :class:`MissingToolError` with
    the ``apt-get install`` line to run.
    """
    for name in names:
        found = find_command(name)
        if found:
            return found
    hint = f"{names[0]} not found: install the Debian package {package} (apt-get install {package})"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingToolError(f"{hint}; tests install it only when they run as root on Debian")
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for name in names:  # another worker may have installed it while we waited
                if found := find_command(name):
                    return found
            _apt_get("update", "-qq")
            _apt_get("install", "-y", "-qq", "--no-install-recommends", package)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    for name in names:
        if found := find_command(name):
            return found
    raise MissingToolError(f"{hint}: apt-get installed {package} but {names[0]} is still missing")
