"""docs/operations.md §2.3 and docs/agent.md "Running", followed literally on a scratch root.

The wheel is installed into ``/opt/ntpmon`` (mapped below a scratch directory), the example
settings become ``/etc/default/ntpmon``, and every unit's ``ExecStartPre=``/``ExecStart=`` runs
with the unit's ``Environment=``, ``EnvironmentFile=``, ``StateDirectory=``,
``WorkingDirectory=`` and ``User=`` (:mod:`systemd_units`) against a MariaDB database of its
own: ``db init``, monitor-api (its certificate naming ``API_HOST``'s host), an agent that
registers, is approved with the admin CLI and submits measurements of a local NTP server, the
scorer (whose ``ExecStartPre=`` setup needs those) and the selector. Only the listen addresses
are added to the command lines (free loopback ports instead of the fixed ones, which parallel
tests would share), and the agent gets the devel variables that keep it on loopback.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from deploy_install import PREFIX, ROOT, run
from sqlalchemy import Engine, func, select
from systemd_units import (
    NOBODY,
    ScratchHost,
    Unit,
    as_nobody,
    parse_environment_file,
    parse_unit,
)

from ntpmon.common.clock import SystemClock
from ntpmon.db.admin import ensure_system_monitor
from ntpmon.db.models import IpVersion
from ntpmon.db.tables import log_scores, monitors, scorer_status
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.ntpserver import NTPResponder

pytestmark = pytest.mark.e2e

UNITS = ROOT / "deploy" / "systemd"
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
AGENT_DOC = (ROOT / "docs" / "agent.md").read_text()
API_ADDRESS = "127.0.7.1"  # not among the certificate's fixed names: API_HOST must add it
AGENT_ADDRESS = "127.0.8.1"
NTP_ADDRESS = "127.0.9.1"
SECOND_NTP_ADDRESS = "127.0.9.2"
WAIT_S = 90
# the units' fixed metrics ports would collide with parallel tests: any free loopback port
LOCAL_METRICS = ("--metrics-addr", "127.0.0.1", "--metrics-port", "0")

# The operator's commands this test performs, verbatim from the documentation.
USER = (
    "id ntpmon >/dev/null 2>&1 || useradd --system --home-dir /var/lib/ntpmon --shell "
    "/usr/sbin/nologin ntpmon"
)
SERVER_STEPS = (
    "python3 -m pip wheel --no-deps -w dist .",
    "python3 -m venv /opt/ntpmon",
    '/opt/ntpmon/bin/pip install "$(ls dist/ntpmon-*.whl)[vault]"',
    USER,
    "install -m 0640 -o root -g ntpmon deploy/ntpmon.env.example /etc/default/ntpmon",
    "runuser -u ntpmon -- sh -c 'set -a; . /etc/default/ntpmon; "
    "exec /opt/ntpmon/bin/monitor-api db init'",
)
AGENT_STEPS = (
    "python3 -m venv /opt/ntpmon",
    '/opt/ntpmon/bin/pip install "$(ls dist/ntpmon-*.whl)"',
    USER,
    "install -m 0644 deploy/systemd/ntppool-agent.default /etc/default/ntppool-agent",
    "install -d -o ntpmon -g ntpmon -m 0700 /var/lib/ntppool-agent",
    "runuser -u ntpmon -- /opt/ntpmon/bin/ntppool-agent -e test setup",
)


class Output:
    """A process's output lines, read by a thread so waiting never blocks on a full pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._new.put(line)

    def wait_for(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """The first line (old or new) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            assert self.process.poll() is None or seen < len(self.lines), self.tail()
            try:
                self._new.get(timeout=0.5)
            except queue.Empty:
                continue
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return "".join(self.lines[-30:])


def wait_until(check: Callable[[], bool], what: Callable[[], str], timeout: float = WAIT_S) -> None:
    """Poll ``check``; ``what`` describes the wait when it times out (with fresh output)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        time.sleep(0.5)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def unit(name: str) -> Unit:
    return parse_unit(UNITS / name)


def shell_env_command(host: ScratchHost, env_file: str, argv: list[str]) -> list[str]:
    """``sh -c 'set -a; . FILE; exec ARGV'``: how the docs load the settings in a shell."""
    script = f"set -a; . {host.path(env_file)}; exec {shlex.join(argv)}"
    return ["sh", "-c", script]


@pytest.fixture
def database() -> Iterator[Engine]:
    """An empty MariaDB database: ``db init`` creates the tables, as for an operator."""
    with temporary_mysql_database("ntpmon_deploy", schema=False) as engine:
        yield engine


def test_the_documented_commands_are_the_ones_tested() -> None:
    for line in SERVER_STEPS:
        assert line in OPERATIONS, line
    for line in AGENT_STEPS:
        assert line in AGENT_DOC, line


def write_settings(host: ScratchHost, dsn: str, management_port: int) -> None:
    """``/etc/default/ntpmon`` from the example, edited as its comments ask."""
    example = (ROOT / "deploy" / "ntpmon.env.example").read_text()
    edits = {
        "DATABASE_DSN": dsn,
        "DEPLOYMENT_MODE": "devel",  # loopback agents are accepted only in devel
        "API_HOST": f"https://{API_ADDRESS}:{management_port}",
    }
    for key, value in edits.items():
        example, count = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", example)
        assert count == 1, f"the example has no {key}= line"
    target = host.path("/etc/default/ntpmon")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(example)
    target.chmod(0o640)
    # root:ntpmon, with nobody's group standing in for ntpmon
    os.chown(target, 0, NOBODY)


def write_agent_settings(host: ScratchHost, ports: dict[str, int], ntp_port: int) -> None:
    """``/etc/default/ntppool-agent`` from the packaged file plus the devel knobs that point
    the agent at this monitor-api and keep every probe on loopback (docs/agent.md)."""
    text = (UNITS / "ntppool-agent.default").read_text()
    text += "\n".join(
        [
            "",
            f"API_HOST=https://{API_ADDRESS}:{ports['management']}",
            f"DEVEL_API_SERVER=https://{API_ADDRESS}:{ports['rpc']}",
            f"MONITOR_CA_FILE={host.path('/etc/ntpmon/monitor-ca.pem')}",
            f"MONITOR_LOCAL_IPV4={AGENT_ADDRESS}",
            f"MONITOR_NTP_PORT={ntp_port}",
            "MONITOR_ALLOW_LOOPBACK=true",
            "MONITOR_TELEMETRY=off",
            "",
        ]
    )
    target = host.path("/etc/default/ntppool-agent")
    target.write_text(text)
    target.chmod(0o644)


def test_units_run_as_documented(installed: ScratchHost, database: Engine) -> None:
    host = installed
    dsn = database.url.render_as_string(hide_password=False)
    management_port = free_port(API_ADDRESS)
    write_settings(host, dsn, management_port)
    responder = NTPResponder(NTP_ADDRESS, 0).start()
    second = NTPResponder(SECOND_NTP_ADDRESS, responder.port).start()  # the agents' one port
    try:
        db_init(host)
        api_unit, ports = start_monitor_api(host, management_port)
        admin = [str(host.path(f"{PREFIX}/bin/monitor-api")), "admin"]
        add_server(host, api_unit, admin, NTP_ADDRESS)
        with database.begin() as conn:  # the agent's local clock check asks the local server
            ensure_system_monitor(
                conn,
                ip_version=IpVersion.V4,
                config={"base_checks": [NTP_ADDRESS]},
                now=SystemClock().now(),
            )
        tls_name = run_agent(host, api_unit, admin, ports, responder.port)
        wait_until(
            lambda: measurements_by(database, tls_name) > 0,
            lambda: f"the first measurements of {tls_name}",
        )
        # the first row is the scorer's starting point, never scored itself; a second server's
        # first check (new candidates are checked at once, then every 2 h) gives it work
        start_scorer(host, database, lambda: add_server(host, api_unit, admin, SECOND_NTP_ADDRESS))
        start_selector(host)
    finally:
        responder.stop()
        second.stop()
    codes = host.stop_all()  # KillSignal=SIGTERM: every program stops cleanly
    assert set(codes.values()) == {0}, codes


def db_init(host: ScratchHost) -> None:
    """§2.3 step 5: the settings file sourced by the service user's shell, then ``db init``."""
    monitor_api = str(host.path(f"{PREFIX}/bin/monitor-api"))
    command = shell_env_command(host, "/etc/default/ntpmon", [monitor_api, "db", "init"])
    init = run(as_nobody(command), cwd="/")
    assert "schema ready" in init.stdout


def start_monitor_api(host: ScratchHost, management_port: int) -> tuple[Unit, dict[str, int]]:
    """monitor-api.service on loopback ports; checks its state directory and certificate."""
    api_unit = unit("monitor-api.service")
    host.make_state_directories(api_unit)
    (start,) = host.commands(api_unit, "ExecStart")
    listeners = {
        "--listen": f"{API_ADDRESS}:0",
        "--management-listen": f"{API_ADDRESS}:{management_port}",
        "--health-listen": f"{API_ADDRESS}:0",
        "--metrics-listen": f"{API_ADDRESS}:0",
        "--internal-listen": f"{API_ADDRESS}:0",
    }
    api = Output(
        host.start_unit_command(api_unit, start + [x for kv in listeners.items() for x in kv])
    )
    ready = api.wait_for(r"monitor-api ready: (.*)")
    ports = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", ready.group(1))}
    data_dir = Path(host.service_environment(api_unit)["MONITOR_API_DATA_DIR"])
    assert data_dir == host.path("/var/lib/ntpmon/monitor-api")
    assert (data_dir / "ca" / "ca.pem").stat().st_uid == NOBODY
    health = httpx.get(f"http://{API_ADDRESS}:{ports['health']}/__health", timeout=10)
    assert health.text == "ok"
    assert httpx.get(f"http://{API_ADDRESS}:{ports['internal']}/monitors/online").json() == []
    # §2.5: the CA root agents pin
    ca = host.path("/etc/ntpmon/monitor-ca.pem")
    ca.parent.mkdir(parents=True, exist_ok=True)
    monitor_api = str(host.path(f"{PREFIX}/bin/monitor-api"))
    root_pem = host.run_unit_command(api_unit, [monitor_api, "ca", "root"])
    assert root_pem.returncode == 0, root_pem.stderr
    ca.write_text(root_pem.stdout)
    # API_HOST's host (an address here) is in the certificate: TLS with host name checking
    # against that CA succeeds (a name mismatch would raise)
    answer = httpx.get(
        f"https://{API_ADDRESS}:{management_port}/__health",
        verify=ssl.create_default_context(cafile=str(ca)),
        timeout=10,
    )
    assert answer.status_code == 404  # the management listener serves no health page
    return api_unit, ports


def add_server(host: ScratchHost, api_unit: Unit, admin: list[str], address: str) -> None:
    added = host.run_unit_command(api_unit, [*admin, "servers", "add", address])
    assert added.returncode == 0, added.stderr


def start_scorer(host: ScratchHost, database: Engine, give_work: Callable[[], None]) -> None:
    """monitor-scorer.service: ``ExecStartPre=`` setup (needs a measurement), the scorer,
    then ``monitor-scorer db`` shows both scorers' cursors."""
    scorer_unit = unit("monitor-scorer.service")
    host.make_state_directories(scorer_unit)
    for pre in host.commands(scorer_unit, "ExecStartPre"):
        done = host.run_unit_command(scorer_unit, pre)
        assert done.returncode == 0, done.stdout + done.stderr
    (start,) = host.commands(scorer_unit, "ExecStart")
    scorer = Output(host.start_unit_command(scorer_unit, [*start, *LOCAL_METRICS]))
    give_work()
    wait_until(lambda: scored(database), lambda: f"the scorer to score:\n{scorer.tail()}")
    assert scorer.process.poll() is None, scorer.tail()
    monitor_scorer = str(host.path(f"{PREFIX}/bin/monitor-scorer"))
    cursors = host.run_unit_command(scorer_unit, [monitor_scorer, "db"])
    assert {"every", "recentmedian"} <= set(cursors.stdout.split()), cursors.stdout


def start_selector(host: ScratchHost) -> None:
    """monitor-selector.service, answering on its metrics port."""
    selector_unit = unit("monitor-selector.service")
    host.make_state_directories(selector_unit)
    (start,) = host.commands(selector_unit, "ExecStart")
    selector = Output(host.start_unit_command(selector_unit, [*start, *LOCAL_METRICS]))
    url = selector.wait_for(r"selector metrics on (http://\S+)").group(1)
    assert "selector_build_info" in httpx.get(url, timeout=10).text


def run_agent(
    host: ScratchHost, api_unit: Unit, admin: list[str], ports: dict[str, int], ntp_port: int
) -> str:
    """docs/agent.md: settings, state directory, ``setup`` as the user, approval, the unit."""
    agent_unit = unit("ntppool-agent@.service")
    write_agent_settings(host, ports, ntp_port)
    state = host.path("/var/lib/ntppool-agent")
    state.mkdir(parents=True)
    os.chown(state, NOBODY, NOBODY)
    state.chmod(0o700)
    agent = str(host.path(f"{PREFIX}/bin/ntppool-agent"))
    # `runuser -u ntpmon -- ntppool-agent -e test setup`: the agent reads /etc/default/ntppool-agent
    # itself; here its lines come through the environment (variables already set win)
    env = {"PATH": "/usr/bin:/bin"} | {
        k: host.map_text(v)
        for k, v in parse_environment_file(
            host.path("/etc/default/ntppool-agent").read_text()
        ).items()
    }
    setup = Output(
        subprocess.Popen(
            # this host reaches monitor-api over IPv4 only
            as_nobody([agent, "-e", "devel", "--no-ipv6", "setup", "--hostname", "deploy-test"]),
            env=env,
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    reg_id = setup.wait_for(r"/monitor/registration/([0-9A-HJKMNP-TV-Z]{26})").group(1)
    listed = host.run_unit_command(api_unit, [*admin, "registrations", "list"])
    assert reg_id in listed.stdout, listed.stdout
    approved = host.run_unit_command(api_unit, [*admin, "registrations", "approve", reg_id])
    assert approved.returncode == 0, approved.stderr
    tls_name = re.search(r"registration approved: monitor (\S+)", approved.stdout)
    assert tls_name, approved.stdout
    assert setup.process.wait(WAIT_S) == 0, setup.tail()
    assert (state / "devel").stat().st_uid == NOBODY
    # ntppool-agent@devel.service
    host.make_state_directories(agent_unit)
    (start,) = host.commands(agent_unit, "ExecStart", instance="devel")
    assert start[1:] == ["--env", "devel", "monitor"]
    host.start_unit_command(agent_unit, start)
    return tls_name.group(1)


def measurements_by(engine: Engine, tls_name: str) -> int:
    """``log_scores`` rows the monitor ``tls_name`` submitted."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(log_scores.join(monitors, monitors.c.id == log_scores.c.monitor_id))
                .where(monitors.c.tls_name == tls_name)
            ).scalar_one()
        )


def scored(engine: Engine) -> bool:
    """Every scorer has written a score row of its own (scorers log under their monitor id)."""
    with engine.connect() as conn:
        scorers = set(conn.execute(select(scorer_status.c.scorer_id)).scalars())
        writers = set(conn.execute(select(log_scores.c.monitor_id).distinct()).scalars())
    return bool(scorers) and scorers <= writers
