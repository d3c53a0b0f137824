"""A world-readable copy of ntpmon and its dependencies, for tests that run code as ``nobody``.

Permission tests drop root so file modes are enforced. The unprivileged process cannot use the
checkout's virtualenv when the checkout lies under a directory other users cannot enter (a
``mktemp -d`` clone, ``/root``), nor a base interpreter under ``/root/.pyenv``. So
:func:`shared_site` copies the installed packages (about a second: chasing only the modules a
command imports proved fragile, as commands import lazily) and the ``ntpmon`` source into a fresh
mode-0755 directory under the system temporary directory, and picks an interpreter every user
can run. Callers make it once per test process and :func:`remove` it afterwards.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ntpmon

# installers and the editable-install hooks: nothing the copy needs, some of it would point back
# into the checkout
SKIP = ("__pycache__", "pip", "pip-*", "setuptools", "_distutils_hack", "*.pth", "__editable__*")


@dataclass(frozen=True)
class SharedPython:
    """An interpreter and a ``PYTHONPATH`` any user can read."""

    python: str
    site: Path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: empty) with the copy on ``PYTHONPATH``."""
        return {**(base or {}), "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1"}


def _world_usable(path: Path) -> bool:
    """Every directory above ``path`` is searchable and ``path`` itself readable by others."""
    resolved = path.resolve()
    if not resolved.exists() or resolved.stat().st_mode & 0o005 != 0o005:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in resolved.parents)


def shared_python_executable() -> str:
    """The base interpreter when others can run it, else Debian's of the same version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(getattr(sys, "_base_executable", sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if _world_usable(base) and _world_usable(stdlib):  # the interpreter needs its stdlib too
        return str(base)
    for candidate in (Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")):
        if _world_usable(candidate):
            return str(candidate)
    raise RuntimeError(
        f"no Python {version} that other users can run: install the Debian package "
        f"python{version} or make {base} readable"
    )


def shared_site() -> SharedPython:
    """Copy the installed packages and ``ntpmon`` into a new world-readable directory."""
    site = Path(tempfile.mkdtemp(prefix="ntpmon-shared-site-"))
    ignore = shutil.ignore_patterns(*SKIP)
    for lib in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        shutil.copytree(lib, site, ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(
        Path(ntpmon.__file__).parent, site / "ntpmon", ignore=ignore, dirs_exist_ok=True
    )
    for path in [site, *site.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644 | (path.stat().st_mode & 0o111))
    return SharedPython(shared_python_executable(), site)


def remove(shared: SharedPython) -> None:
    """Delete the copy (files the unprivileged user made inside it included)."""
    shutil.rmtree(shared.site, ignore_errors=True)
