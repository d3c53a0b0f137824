"""A private Debian ``chronyd`` on loopback, as a real NTP peer for tests and benchmarks.

It never touches the system clock (``-x``), listens only on 127.0.0.1 on a free unprivileged
port (so parallel test workers never collide), keeps its pid and drift files in a temporary
directory, has no command port, and serves as a local stratum-1 reference.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ntpmon.common.errors import NtpmonError
from ntpmon.ntp import sntp
from ntpmon.testing.debian import ensure_command

READY_TIMEOUT_S = 10.0


class ChronydError(NtpmonError):
    """chronyd is missing or did not start answering."""


@dataclass(frozen=True)
class Chronyd:
    """A running private chronyd."""

    host: str
    port: int
    process: subprocess.Popen


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (bind to port 0, read it, release it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def chronyd_config(port: int, workdir: Path, host: str = "127.0.0.1") -> str:
    """The configuration of a loopback-only local reference that answers clients on ``port``."""
    return "\n".join(
        [
            f"port {port}",
            f"bindaddress {host}",
            "local stratum 1",
            f"allow {host}",
            "cmdport 0",
            f"pidfile {workdir / 'chronyd.pid'}",
            f"driftfile {workdir / 'chronyd.drift'}",
            "",
        ]
    )


def _wait_until_answering(host: str, port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChronydError(f"chronyd exited with status {proc.returncode}")
        try:
            sntp.query(host, port=port, timeout=0.5)
        except (sntp.NTPNetworkError, sntp.NTPProtocolError) as exc:
            last_error = str(exc)
            time.sleep(0.1)
        else:
            return
    raise ChronydError(f"chronyd on {host}:{port} did not answer: {last_error}")


@contextlib.contextmanager
def private_chronyd(
    host: str = "127.0.0.1", *, realtime_priority: int | None = None
) -> Iterator[Chronyd]:
    """Start chronyd in the foreground on a free port; stop it (and wait) on exit.

    ``realtime_priority`` runs it under SCHED_FIFO (chronyd ``-P``), as an NTP server that must
    answer precisely on a busy host is run; benchmarks use it to keep the reference's own
    scheduling delays out of the client's figures.
    """
    binary = ensure_command("chronyd", package="chrony")
    with tempfile.TemporaryDirectory(prefix="ntpmon-chronyd-") as tmp:
        workdir = Path(tmp)
        port = free_udp_port(host)
        conf = workdir / "chrony.conf"
        conf.write_text(chronyd_config(port, workdir, host))
        log = (workdir / "chronyd.log").open("wb")
        # -x: never adjust the system clock; -d: foreground; -u root: keep file access in tmp.
        argv = [binary, "-x", "-d", "-u", "root", "-f", str(conf)]
        if realtime_priority is not None:
            argv += ["-P", str(realtime_priority)]
        proc = subprocess.Popen(  # noqa: S603 (fixed argv, our own temp config)
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                _wait_until_answering(host, port, proc)
            except ChronydError as exc:
                log.flush()
                tail = (workdir / "chronyd.log").read_text(errors="replace").strip()[-500:]
                raise ChronydError(f"{exc}; chronyd said: {tail or '(nothing)'}") from None
            yield Chronyd(host=host, port=port, process=proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
