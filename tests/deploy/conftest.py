"""Fixtures of the deployment tests: the wheel, built once per session, and its installation.

The wheel is what an operator installs (docs/operations.md §2.3), so the tests install it the
same way into a fresh virtualenv under a scratch root, with an interpreter the units' user can
run (:func:`ntpmon.testing.shared_site.shared_python_executable`). Its dependencies come from
PyPI through pip, normally from pip's cache after ``make install``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_install import PREFIX, ROOT, run
from systemd_units import ScratchHost, scratch_host

from ntpmon.testing.shared_site import shared_python_executable


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python3 -m pip wheel --no-deps -w dist .`` in the checkout, once per session."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)])
    (built,) = dist.glob("ntpmon-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path) -> Iterator[ScratchHost]:
    """A scratch root with the wheel installed into ``/opt/ntpmon`` as operations.md says."""
    with scratch_host() as host:
        venv = host.path(PREFIX)
        # the usual umask, whatever the test runner's: the units' user must read the install
        run([shared_python_executable(), "-m", "venv", str(venv)], umask=0o022)
        run([str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[vault]"], umask=0o022)
        yield host
