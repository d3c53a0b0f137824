"""The agent against the real monitor-api over real TLS, with real NTP responders on loopback.

setup → approval with the admin CLI → certificate → ``monitor --once`` → rows in log_scores;
then ``monitor`` as a daemon: the operator pauses the monitor, the state file changes, and the
running agent stops asking for work; resumed, it asks again — without a restart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from agent.real_api import admin
from agent.threads_helper import wait_for
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.version import version
from ntpmon.db.admin import ensure_system_monitor
from ntpmon.db.tables import log_scores, monitors
from ntpmon.testing.ntpserver import NTPResponder

pytestmark = [pytest.mark.db, pytest.mark.e2e, pytest.mark.timeout(180)]
AGENT = str(Path(sys.executable).parent / "ntppool-agent")
SERVERS = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def ntp_servers() -> Iterator[list[NTPResponder]]:
    first = NTPResponder(SERVERS[0], 0).start()
    rest = [NTPResponder(host, first.port).start() for host in SERVERS[1:]]
    try:
        yield [first, *rest]
    finally:
        for responder in [first, *rest]:
            responder.stop()


@pytest.mark.parametrize("protocol", ["connect", "grpc"])
def test_setup_approve_monitor_once_then_hot_reload(
    protocol: str,
    db: Engine,
    api_server: MonitorApiServer,
    ntp_servers: list[NTPResponder],
    tmp_path: Path,
) -> None:
    ca_file = tmp_path / "monitor-ca.pem"
    ca_file.write_text(api_server.ca.root_pem())
    for host in SERVERS:
        admin(db, "servers", "add", host)
    with db.begin() as conn:
        ensure_system_monitor(
            conn,
            ip_version="v4",
            config={"samples": 1, "base_checks": list(SERVERS)},
            now=datetime.now(UTC),
        )
    state_dir = tmp_path / "agent-state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "API_HOST"))}
    env.update(
        {
            "API_HOST": f"https://127.0.0.1:{api_server.ports['management']}",
            "DEVEL_API_SERVER": f"https://127.0.0.1:{api_server.ports['rpc']}",
            "MONITOR_CA_FILE": str(ca_file),
            "MONITOR_NTP_PORT": str(ntp_servers[0].port),
            "MONITOR_ALLOW_LOOPBACK": "true",
            "MONITOR_TELEMETRY": "off",  # no collector here (test_otlp_export.py has one)
            "MONITOR_RPC_PROTOCOL": protocol,
        }
    )
    common = ["-e", "devel", "--state-dir", str(state_dir), "--no-ipv6"]

    # 1. setup: registers and prints the approval URL, then waits for the operator
    setup = subprocess.Popen(
        [AGENT, "setup", "--hostname", "e2e-host", *common],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert setup.stdout is not None
    reg_id = ""
    for line in setup.stdout:
        match = re.search(r"/monitor/registration/([0-9A-Z]{26})", line)
        if match:
            reg_id = match.group(1)
            break
    assert reg_id, setup.stderr.read() if setup.stderr else ""
    admin(db, "registrations", "approve", reg_id)  # 2. approval with the admin CLI
    _, err = setup.communicate(timeout=60)
    assert setup.returncode == 0, err
    assert "setup complete" in err

    # 3.+4. certificate, then one batch
    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENT, *args, *common],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    once = agent("monitor", "--once")
    assert once.returncode == 0, once.stderr
    assert (state_dir / "devel" / "cert.pem").is_file()
    assert (state_dir / "devel" / "ca.pem").read_text() == api_server.ca.root_pem()
    with db.connect() as conn:
        monitor_id, client_version = conn.execute(
            select(monitors.c.id, monitors.c.client_version).where(
                monitors.c.tls_name.like("e2e-host-%")
            )
        ).one()
        rows = conn.execute(
            select(log_scores.c.server_id, log_scores.c.step, log_scores.c.attributes).where(
                log_scores.c.monitor_id == monitor_id
            )
        ).all()
    assert len(rows) == len(SERVERS)
    assert client_version == version()  # the whole User-Agent version, nothing appended
    assert all(row.step > 0 for row in rows), rows

    # diagnostics against both APIs
    diag = agent("api", "ok")
    assert diag.returncode == 0, diag.stderr
    assert "monitor API ok" in diag.stderr and "API diagnostics complete" in diag.stderr

    # 5. hot reload while monitor runs
    daemon = subprocess.Popen(
        [AGENT, "monitor", *common],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(daemon.stderr or []), daemon=True)
    reader.start()
    tls_name = json.loads((state_dir / "devel" / "state.json").read_text())["Data"]["TLSName"]
    state = state_dir / "devel" / "state.json"

    def logged(text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in list(lines))

    def last_seen() -> object:
        with db.connect() as conn:
            return conn.execute(
                select(monitors.c.last_seen).where(monitors.c.id == monitor_id)
            ).scalar_one()

    try:
        wait_for(logged("local-check"))
        assert not logged("ipv4_status=paused")()  # past the gates, the worker is running
        admin(db, "monitors", "pause", tls_name)
        state.write_text(state.read_text())  # an edit of state.json triggers a reload
        wait_for(logged("ipv4_status=paused"))
        time.sleep(1.0)
        seen = last_seen()
        time.sleep(3.0)
        assert last_seen() == seen  # no RPCs while paused
        admin(db, "monitors", "resume", tls_name)
        state.write_text(state.read_text())
        wait_for(logged('IPv4 protocol status changed" live=True'))
        wait_for(lambda: last_seen() != seen)  # asks for work again, without a restart
    except AssertionError:
        print("".join(lines))  # the agent's log, to see why
        raise
    finally:
        daemon.terminate()
        daemon.wait(30)
        reader.join(5)
    assert daemon.returncode == 0, "".join(lines)
