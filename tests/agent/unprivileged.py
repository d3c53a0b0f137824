"""Run a snippet as an unprivileged user, so permission faults are real even when tests run as
root (root ignores file modes). Uses util-linux ``setpriv`` to drop to ``nobody``.

``nobody`` may not be able to enter the checkout or read its virtualenv (a clone under a
``mktemp -d`` directory, a pyenv interpreter under ``/root``), so the snippet runs on a
world-readable copy of ntpmon and its imports (:mod:`ntpmon.testing.shared_site`), made once per
process and removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ntpmon.testing.shared_site import SharedPython, remove, shared_site

NOBODY = 65534


@functools.cache
def _shared() -> SharedPython:
    shared = shared_site()
    atexit.register(remove, shared)
    return shared


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:  # already unprivileged: the checkout is ours to read
        cmd = [sys.executable, "-c", code, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root for permission tests"
    shared = _shared()
    cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    cmd += [shared.python, "-c", code, *args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=shared.env(env if env is not None else dict(os.environ)),
        cwd="/",
    )


def run_agent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from ntpmon.agent.cli.main import main; main(sys.argv[1:])"
    return run_python(code, *args, env=env)


@contextmanager
def shared_tmp() -> Iterator[Path]:
    """A temp dir the unprivileged user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ntpmon-agent-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)
