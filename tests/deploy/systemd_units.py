"""Run a systemd unit's commands the way systemd would, on a scratch root instead of ``/``.

The deployment tests must prove the unit files work as written, without a running systemd (no
container has one, and CI must not install services on its host). So this module reads a unit
with systemd's rules for the settings the units use — ``Environment=``, ``EnvironmentFile=``
(``-`` for optional; files override ``Environment=``), ``User=``, ``StateDirectory=`` with
``StateDirectoryMode=``, ``WorkingDirectory=``, ``ExecStartPre=``/``ExecStart=`` with the
``%i`` specifier — and runs them under :class:`ScratchHost`, which maps the absolute paths of
the deployment (``/etc/default``, ``/var/lib``, ``/opt/ntpmon``) into a world-readable
directory. The unit's user is played by ``nobody``: creating a system account on the test
machine would outlive the test.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
MAPPED_PREFIXES = ("/etc/default/", "/var/lib/", "/opt/ntpmon")


@dataclass(frozen=True)
class Unit:
    """A parsed unit file: every ``[Service]`` key with its values in file order."""

    name: str
    service: Mapping[str, list[str]]

    def one(self, key: str, default: str = "") -> str:
        values = self.service.get(key) or [default]
        return values[-1]

    def all(self, key: str) -> list[str]:
        return list(self.service.get(key, []))


def parse_unit(path: Path) -> Unit:
    """systemd's unit syntax as the deployment units use it (no line continuations)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a setting: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(path.name, sections.get("Service", {}))


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines; ``#``/``;`` comments; one pair of surrounding quotes removed."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


@dataclass
class ScratchHost:
    """A directory standing in for ``/``: the deployment's paths are mapped below it."""

    root: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def path(self, absolute: str) -> Path:
        """Where ``absolute`` (``/etc/default/ntpmon``) lives on this host."""
        return self.root / absolute.lstrip("/")

    def map_text(self, text: str) -> str:
        """Every mapped absolute path in ``text`` rewritten to this host."""
        for prefix in MAPPED_PREFIXES:
            text = text.replace(prefix, f"{self.root}{prefix}")
        return text

    def service_environment(self, unit: Unit) -> dict[str, str]:
        """What systemd gives the unit's processes: a minimal PATH, ``Environment=``, then the
        ``EnvironmentFile=`` files (they win), and ``STATE_DIRECTORY``."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for assignments in unit.all("Environment"):
            for item in shlex.split(assignments):
                key, _, value = item.partition("=")
                env[key] = self.map_text(value)
        for spec in unit.all("EnvironmentFile"):
            optional = spec.startswith("-")
            file = self.path(spec.lstrip("-"))
            if optional and not file.exists():
                continue
            for key, value in parse_environment_file(file.read_text()).items():
                env[key] = self.map_text(value)
        states = [self.path(f"/var/lib/{name}") for name in unit.one("StateDirectory").split()]
        if states:
            env["STATE_DIRECTORY"] = ":".join(map(str, states))
        return env

    def make_state_directories(self, unit: Unit) -> None:
        """``StateDirectory=``: created, owned by the unit's user, ``StateDirectoryMode=``."""
        mode = int(unit.one("StateDirectoryMode", "0755"), 8)
        for name in unit.one("StateDirectory").split():
            directory = self.path(f"/var/lib/{name}")
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, NOBODY, NOBODY)
            directory.chmod(mode)

    def commands(self, unit: Unit, key: str, instance: str = "") -> list[list[str]]:
        """The ``key`` (``ExecStart``, ``ExecStartPre``) command lines, specifiers resolved."""
        return [
            [self.map_text(arg) for arg in shlex.split(line.replace("%i", instance))]
            for line in unit.all(key)
        ]

    def as_user(self, unit: Unit, argv: list[str]) -> list[str]:
        """``argv`` as the unit's ``User=`` (played by nobody) when it names one."""
        return as_nobody(argv) if unit.one("User") else argv

    def run_unit_command(
        self, unit: Unit, argv: list[str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """One command of ``unit`` to completion (``ExecStartPre=``, a one-shot step)."""
        return subprocess.run(
            self.as_user(unit, argv),
            env=self.service_environment(unit),
            cwd=self.map_text(unit.one("WorkingDirectory", "/")),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_unit_command(self, unit: Unit, argv: list[str]) -> subprocess.Popen[str]:
        """A long-running command of ``unit``; stopped by :meth:`stop_all`."""
        process = subprocess.Popen(
            self.as_user(unit, argv),
            env=self.service_environment(unit),
            cwd=self.map_text(unit.one("WorkingDirectory", "/")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.processes.append(process)
        return process

    def stop_all(self, timeout: float = 30) -> dict[int, int]:
        """``KillSignal=SIGTERM`` to every started process, newest first; their exit codes."""
        codes: dict[int, int] = {}
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                codes[process.pid] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[process.pid] = process.wait()
        return codes


def as_nobody(argv: list[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run a unit's User= as nobody"
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@contextmanager
def scratch_host() -> Iterator[ScratchHost]:
    """A world-traversable scratch root under the system temporary directory (pytest's
    ``tmp_path`` is private to root, so the unit's user could not reach its files)."""
    root = Path(tempfile.mkdtemp(prefix="ntpmon-deploy-"))
    root.chmod(0o755)
    host = ScratchHost(root)
    try:
        yield host
    finally:
        host.stop_all()
        shutil.rmtree(root, ignore_errors=True)
