"""``monitor-api server --processes 2``: two real processes serve one gRPC port.

Each new client connection lands on one of the processes (SO_REUSEPORT); the test keeps
opening connections until batches were accepted by both, checks every row and the summed
metrics, then stops the server with SIGTERM and expects both processes to exit cleanly.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from api_testkit import status_for
from sqlalchemy import Engine, func, select, update

from ntpmon.api.ca import EmbeddedCA
from ntpmon.common.clock import SystemClock
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import log_scores, servers
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc
from ntpmon.testing.apiprocess import LISTENERS

pytestmark = [pytest.mark.e2e, pytest.mark.db]

NAME = "uspao1-proc01.devel.mon.ntppool.dev"
MONITOR_IP = "192.0.2.10"
SERVER_COUNT = 300  # 30 batches of 10: room for many connections
ACCESS = re.compile(r"logger=ntpmon\.api\.access .*method=SubmitResults .*code=(\w+) pid=(\d+)")


class ServerProcess:
    """``monitor-api server`` as a child process, its stderr collected by a thread."""

    def __init__(self, dsn: str, data_dir: Path, processes: int) -> None:
        exe = Path(sys.executable).parent / "monitor-api"
        command = [str(exe), "server", "--database-dsn", dsn, "--data-dir", str(data_dir)]
        command += ["--processes", str(processes), "--grace", "2", "--log-level", "info"]
        for option in LISTENERS:
            command += [option, "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            command, stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"}
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(90):
            raise AssertionError(f"server did not start: {self.lines[-5:]}")

    def _read(self, ready: threading.Event) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("monitor-api ready:"):
                self.ports = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
                ready.set()
        ready.set()

    def accepted_by(self) -> dict[int, int]:
        """Accepted SubmitResults per serving process id, from the access log."""
        counts: dict[int, int] = {}
        for line in list(self.lines):
            match = ACCESS.search(line)
            if match and match.group(1) == "OK":
                pid = int(match.group(2))
                counts[pid] = counts.get(pid, 0) + 1
        return counts


@pytest.fixture
def server(db: Engine, tmp_path: Path) -> Iterator[ServerProcess]:
    now = SystemClock().now()  # the server process runs on the system clock
    with db.begin() as conn:
        for i in range(SERVER_COUNT):
            admin.create_server(conn, ip=f"198.51.{100 + i // 250}.{i % 250 + 1}", now=now)
        conn.execute(update(servers).values(stratum=2))
        monitor = admin.create_monitor(
            conn, tls_name=NAME, ip=MONITOR_IP, now=now, status=MonitorStatus.ACTIVE
        )
        admin.assign_monitor_to_servers(conn, monitor_id=monitor, now=now)
    running = ServerProcess(db.url.render_as_string(hide_password=False), tmp_path / "data", 2)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def _one_batch(port: int, creds: grpc.ChannelCredentials) -> int:
    """GetServers → SubmitResults on a fresh connection; the number of results accepted."""
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        stub = pb_grpc.MonitorServiceStub(channel)
        batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP), timeout=30)
        statuses = [status_for(s) for s in batch.servers]
        request = pb.SubmitResultsRequest(
            version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id, list=statuses
        )
        assert stub.SubmitResults(request, timeout=30).ok
        return len(statuses)


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _metric(text: str, name: str, result: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'result="{result}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_two_processes_accept_batches_and_stop_on_sigterm(server, db, tmp_path):
    ca = EmbeddedCA.load_or_create(tmp_path / "data" / "ca")
    cert = ca.issue_client(NAME, timedelta(hours=1))
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.root_pem().encode(),
        private_key=cert.key_pem.encode(),
        certificate_chain=cert.cert_pem.encode(),
    )
    results = batches = 0
    while len(server.accepted_by()) < 2 and batches < SERVER_COUNT // 10:
        results += _one_batch(server.ports["rpc"], creds)
        batches += 1
        assert _wait_for(lambda n=batches: sum(server.accepted_by().values()) == n)
    by_process = server.accepted_by()
    assert len(by_process) == 2 and server.proc.pid in by_process
    assert sum(by_process.values()) == batches
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar() == results
    exposition = httpx.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics", timeout=10)
    assert _metric(exposition.text, "tests_completed_total", "ok") == results

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    worker = next(pid for pid in by_process if pid != server.proc.pid)
    assert not Path(f"/proc/{worker}").exists()
    assert not [line for line in server.lines if "level=ERROR" in line]


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_workers_stop_when_the_main_process_is_killed(tmp_path):
    running = ServerProcess(f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "data", 3)
    try:
        workers = [
            int(m.group(1))
            for line in running.lines
            if (m := re.search(r'msg="RPC worker started" pid=(\d+)', line))
        ]
        assert len(workers) == 2
        running.proc.kill()  # SIGKILL: no chance to stop the workers itself
        running.proc.wait()
        assert _wait_for(lambda: all(_gone(pid) for pid in workers), timeout=30)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
