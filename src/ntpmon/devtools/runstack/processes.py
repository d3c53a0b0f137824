"""Child processes of the local stack: start with a log file each, watch, stop cleanly.

Children run in their own session, so Ctrl-C in the terminal reaches only the orchestrator,
which then stops them in order with SIGTERM (each program shuts down gracefully on it) and
uses SIGKILL only for one that does not exit in time.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ntpmon.common.errors import NtpmonError

INHERITED_DROP = ("API_HOST", "DEVEL_API_SERVER", "DATABASE_DSN", "DEPLOYMENT_MODE", "JWT_KEY")
"""Variables of the caller's shell that must not leak into the children (they would point the
stack somewhere else); ``MONITOR_*`` variables are dropped as well."""


class StackError(NtpmonError):
    """A step of the local stack failed; the message says which and shows the log."""


class StackInterruptedError(StackError):
    """Ctrl-C (or SIGTERM) arrived while the stack was still starting."""


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without stack-steering variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in INHERITED_DROP and not k.startswith("MONITOR_")
    }
    env.update(extra)
    return env


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file (for error messages)."""
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


@dataclasses.dataclass
class Child:
    """A running program of the stack."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    """Starts children, notices when one dies, and stops them all (last started first)."""

    def __init__(self, logs: Path, *, cwd: Path) -> None:
        self.logs = logs
        self.cwd = cwd
        self.children: list[Child] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own programs, arguments built here
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_environment(env),
                cwd=self.cwd,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def run(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 120
    ) -> str:
        """Run a one-shot command to completion; its output is returned and logged."""
        try:
            done = subprocess.run(  # noqa: S603 - our own programs, arguments built here
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=child_environment(env),
                cwd=self.cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"{name}: no result after {timeout:.0f} s") from None
        with (self.logs / "commands.log").open("a") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}(exit {done.returncode})\n")
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise StackError(f"{name} failed (exit {done.returncode}): {output}")
        return done.stdout

    def exited(self) -> list[Child]:
        """Children that are no longer running (for the caller to report)."""
        return [c for c in self.children if not c.running()]

    def wait_for_output(
        self,
        child: Child,
        found: Callable[[str], str | None],
        *,
        timeout: float,
        stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """Poll ``child``'s log until ``found(text)`` returns something; fail if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stop():
                raise StackInterruptedError(f"interrupted while waiting for {child.name}")
            text = child.log.read_text(errors="replace") if child.log.exists() else ""
            result = found(text)
            if result is not None:
                return result
            if not child.running():
                raise StackError(
                    f"{child.name} exited with status {child.process.returncode}:\n"
                    f"{tail(child.log)}"
                )
            time.sleep(0.2)
        raise StackError(f"{child.name}: not ready after {timeout:.0f} s:\n{tail(child.log)}")

    def stop(self, child: Child, timeout: float = 20) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        if child.running():
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(10)
        return child.process.returncode

    def stop_all(self, timeout: float = 20) -> dict[str, int]:
        """Stop every child, the last started first; returns their exit statuses."""
        return {c.name: self.stop(c, timeout) for c in reversed(self.children)}
