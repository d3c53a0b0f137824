"""``monitor-api server`` as a real child process on free loopback ports, for tests.

The server prints ``monitor-api ready: management=... rpc=...`` once every listener is bound;
reading that line is how callers learn the ports it picked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LISTENERS = (
    "--listen",
    "--management-listen",
    "--health-listen",
    "--metrics-listen",
    "--internal-listen",
)


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    ports: dict[str, int]


@contextmanager
def monitor_api_process(dsn: str, data_dir: Path, *extra: str) -> Iterator[ApiProcess]:
    """Start monitor-api, wait for its ready line, and make sure it is gone afterwards."""
    exe = Path(sys.executable).parent / "monitor-api"
    command = [str(exe), "server", "--database-dsn", dsn, "--data-dir", str(data_dir)]
    command += ["--grace", "2", *extra]
    for option in LISTENERS:
        command += [option, "127.0.0.1:0"]
    proc = subprocess.Popen(  # noqa: S603 - our own console script, arguments built here
        command,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MONITOR_LOG_LEVEL": "warn"},
    )
    try:
        assert proc.stderr is not None
        ports: dict[str, int] = {}
        for line in proc.stderr:
            if line.startswith("monitor-api ready:"):
                ports = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
                break
        yield ApiProcess(proc, ports)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
