"""``make run``: the whole monitoring system on one machine, as separate processes.

Steps: check every program is installed → schema → seed (schedule, demo servers, the agents'
clock-check host) → NTP responders → monitor-api → the ClickHouse exporter (chDB in the run
directory, which the pages read too) → two agents registered with ``setup`` and approved with
the admin CLI → once measurements arrive: ``scorer setup``, the scorer and the selector → a live
summary until Ctrl-C (or ``--duration``), then everything stops in order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from ntpmon.db import pages as queries
from ntpmon.devtools.runstack import plan
from ntpmon.devtools.runstack.preflight import missing_pieces
from ntpmon.devtools.runstack.processes import StackError, StackInterruptedError, Supervisor, tail
from ntpmon.devtools.runstack.summary import render, server_states

PIPED_EVERY_S = 60.0
"""How often, at most, the summary is appended when the output is not a terminal."""
READY_LINE = re.compile(r"monitor-api ready: (.*)")
REGISTRATION_URL = re.compile(r"/monitor/registration/([0-9A-HJKMNP-TV-Z]{26})")
APPROVED = re.compile(r"registration approved: monitor (\S+)")
MQTT_ADDRESS = ("127.0.0.1", 1883)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_stack.py",
        description="Run ntpmon on this machine: NTP responders, monitor-api, scorer, "
        "selector, the ClickHouse exporter and two agents. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--database-dsn",
        default="",
        help="MySQL/MariaDB URL of an empty database (default: SQLite in the run directory)",
    )
    parser.add_argument("--run-dir", type=Path, default=Path("var/run-stack"))
    parser.add_argument("--ntp-port", type=int, default=12300, help="UDP port (0: any free)")
    parser.add_argument(
        "--base-port",
        type=int,
        default=18000,
        help="first of eight consecutive TCP ports (0: any free)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop by itself this many seconds after everything runs (0: until Ctrl-C)",
    )
    parser.add_argument(
        "--refresh", type=float, default=5.0, help="seconds between summary updates"
    )
    parser.add_argument(
        "--start-as",
        type=plan.StartAs,
        choices=list(plan.StartAs),
        default=plan.StartAs.TESTING,
        help="the agents' first status on every server (default testing; see docs)",
    )
    return parser.parse_args(argv)


def broker_answers(address: tuple[str, int] = MQTT_ADDRESS, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


class Stack:
    """One run: the layout, the children, the in-process NTP responders, the stop flag."""

    def __init__(self, layout: plan.Layout, out: Callable[[str], None]) -> None:
        self.layout = layout
        self.out = out
        self.stop_requested = threading.Event()
        self.supervisor = Supervisor(layout.logs, cwd=layout.run_dir)
        self.responders: list = []
        self.ports: dict[str, int] = {}
        self.engine: Engine | None = None
        self.started = time.monotonic()
        self.scoring = False

    # -- steps --------------------------------------------------------------------------

    def admin(self, name: str, *args: str) -> str:
        return self.supervisor.run(
            name, plan.admin_command(*args), plan.server_env(self.layout), timeout=60
        )

    def prepare_database(self) -> None:
        from ntpmon.db.engine import open_database

        self.supervisor.run(
            "schema",
            [plan.program("monitor-api"), "db", "init"],
            plan.server_env(self.layout),
            timeout=120,
        )
        self.engine = open_database(self.layout.dsn)
        with self.engine.connect() as conn:
            existing = queries.list_server_overviews(conn)
        if existing:
            raise StackError(
                f"the database already has {len(existing)} server(s); "
                "make run needs an empty database (or none: the SQLite default)"
            )

    def seed(self) -> None:
        """The fast schedule, the demo servers and the clock-check host of the agents."""
        from ntpmon.common.clock import SystemClock
        from ntpmon.db.admin import ensure_system_monitor
        from ntpmon.db.models import IpVersion

        self.admin("schedule", "settings", "set", "monitors", json.dumps(plan.SCHEDULE))
        for spec in plan.RESPONDERS:
            self.admin(
                f"add server {spec.name}",
                "servers",
                "add",
                spec.address,
                "--hostname",
                f"{spec.name}.stack.test",
            )
        # No admin command sets the per-IP-version monitor defaults; the db layer does.
        assert self.engine is not None
        with self.engine.begin() as conn:
            ensure_system_monitor(
                conn,
                ip_version=IpVersion.V4,
                config={"base_checks": [plan.BASE_CHECK]},
                now=SystemClock().now(),
            )

    def start_responders(self) -> None:
        from ntpmon.testing.ntpserver import Behaviour, NTPResponder, ResponderSettings

        port = self.layout.ntp_port
        for spec in plan.RESPONDERS:
            settings = dict(spec.settings)
            if "behaviour" in settings:
                settings["behaviour"] = Behaviour(settings["behaviour"])
            try:
                responder = NTPResponder(spec.address, port, ResponderSettings(**settings)).start()
            except OSError as exc:
                raise StackError(
                    f"cannot serve NTP on {spec.address}:{port}: {exc} "
                    "(another make run? try --ntp-port)"
                ) from None
            port = responder.port
            self.responders.append(responder)
        self.layout = dataclasses.replace(self.layout, ntp_port=port)

    def start_api(self) -> None:
        child = self.supervisor.start(
            "monitor-api", plan.api_command(self.layout), plan.server_env(self.layout)
        )

        def ready(text: str) -> str | None:
            match = READY_LINE.search(text)
            return match.group(1) if match else None

        line = self.supervisor.wait_for_output(
            child, ready, timeout=90, stop=self.stop_requested.is_set
        )
        self.ports = {k: int(v) for k, v in (item.split("=") for item in line.split())}

    def start_exporter(self) -> None:
        """The exporter copies log_scores and traceroutes from the start (the schema has its
        cursor table), so the pages' long history fills as the agents report."""
        self.supervisor.start(
            "exporter", plan.exporter_command(self.layout), plan.server_env(self.layout)
        )

    def register_agent(self, index: int) -> None:
        """``setup`` (registration), approval by the admin CLI, activation."""
        layout = self.layout
        env = plan.agent_env(layout, index, self.ports["rpc"], self.ports["management"])
        setup = self.supervisor.start(
            f"agent-{index + 1}-setup",
            plan.agent_command(layout, index, "setup", "--hostname", f"agent-{index + 1}"),
            env,
        )

        def registration(text: str) -> str | None:
            match = REGISTRATION_URL.search(text)
            return match.group(1) if match else None

        reg_id = self.supervisor.wait_for_output(
            setup, registration, timeout=90, stop=self.stop_requested.is_set
        )
        approved = self.admin(f"approve agent-{index + 1}", "registrations", "approve", reg_id)
        match = APPROVED.search(approved)
        if not match:
            raise StackError(f"unexpected answer from registrations approve: {approved.strip()}")
        try:
            setup.process.wait(90)
        except Exception:
            raise StackError(
                f"agent-{index + 1} setup did not finish:\n{tail(setup.log)}"
            ) from None
        if setup.process.returncode != 0:
            raise StackError(f"agent-{index + 1} setup failed:\n{tail(setup.log)}")
        self.supervisor.children.remove(setup)
        tls_name = match.group(1)
        self.admin(f"activate agent-{index + 1}", "monitors", "activate", tls_name)
        if layout.start_as is plan.StartAs.TESTING:
            self.assign_as_testing(tls_name)
        self.supervisor.start(
            f"agent-{index + 1}", plan.agent_command(layout, index, "monitor"), env
        )

    def assign_as_testing(self, tls_name: str) -> None:
        """Every server assignment of the monitor becomes ``testing`` (see ``plan.StartAs``)."""
        from ntpmon.db.common import update_server_score_status

        assert self.engine is not None
        with self.engine.begin() as conn:
            monitors = [m for m in queries.list_monitor_overviews(conn) if m.tls_name == tls_name]
            servers = queries.list_server_overviews(conn)
            for monitor in monitors:
                for server in servers:
                    update_server_score_status(
                        conn, monitor_id=monitor.id, server_id=server.id, status="testing"
                    )

    def measured_monitors(self) -> int:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return len({m for (_, m) in queries.measurement_counts(conn)})

    def start_scoring(self) -> None:
        """Scorer rows need a first measurement; then the scorer and the selector start."""
        env = plan.server_env(self.layout)
        self.supervisor.run(
            "scorer setup", [plan.program("monitor-scorer"), "scorer", "setup"], env
        )
        self.supervisor.start("monitor-scorer", plan.scorer_command(self.layout), env)
        self.supervisor.start("selector", plan.selector_command(self.layout), env)
        self.scoring = True

    # -- summary ------------------------------------------------------------------------

    @property
    def pages_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.get('health', 0)}/"

    def summary(self) -> str:
        assert self.engine is not None
        with self.engine.connect() as conn:
            servers = queries.list_server_overviews(conn)
            counts = queries.measurement_counts(conn)
            monitors = queries.list_monitor_overviews(conn)
        elapsed = int(time.monotonic() - self.started)
        running = ", ".join(c.name for c in self.supervisor.children if c.running())
        header = [
            f"ntpmon local stack · status pages {self.pages_url} · Ctrl-C stops",
            f"up {elapsed // 60}m{elapsed % 60:02d}s"
            f" · database {self.engine.url.get_backend_name()}"
            f" · MQTT {'on' if self.layout.mqtt else 'off (no broker on 127.0.0.1:1883)'}"
            f" · NTP port {self.layout.ntp_port} · logs {self.layout.logs}",
            f"running: {running}",
        ]
        if not self.scoring:
            header.append("waiting for the first measurements before starting the scorer…")
        return render(server_states(plan.RESPONDERS, servers, counts), monitors, header=header)

    def check_children(self) -> None:
        for child in self.supervisor.exited():
            raise StackError(
                f"{child.name} stopped unexpectedly (status {child.process.returncode}):\n"
                f"{tail(child.log)}"
            )

    # -- lifetime -----------------------------------------------------------------------

    def shutdown(self) -> None:
        statuses = self.supervisor.stop_all()
        for responder in self.responders:
            responder.stop()
        if self.engine is not None:
            self.engine.dispose()
        if statuses:
            self.out(
                "stopped: " + ", ".join(f"{name} (exit {code})" for name, code in statuses.items())
            )


def wait_for_measurements(stack: Stack, agents: int, timeout: float) -> None:
    """Until every agent submitted something (or ``timeout``), so the selector sees them all."""
    deadline = time.monotonic() + timeout
    while not stack.stop_requested.is_set():
        stack.check_children()
        measured = stack.measured_monitors()
        if measured >= agents or (measured and time.monotonic() > deadline):
            return
        if time.monotonic() > deadline + timeout:
            raise StackError(
                "no measurements arrived; see the agent logs in " + str(stack.layout.logs)
            )
        stack.stop_requested.wait(2)


class SummaryPrinter:
    """Shows the summary: redrawn in place on a terminal; appended to a pipe or a log only when
    it changed and at most every :data:`PIPED_EVERY_S` seconds (and once at the end), so a piped
    ``make run`` writes a few kilobytes a minute instead of the whole block every refresh."""

    def __init__(
        self,
        out: Callable[[str], None],
        *,
        interactive: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.interactive = interactive
        self.clock = clock
        self.last_text: str | None = None
        self.last_at = float("-inf")

    def show(self, text: str, *, final: bool = False) -> None:
        if self.interactive:
            self.out("\x1b[H\x1b[J" + text)
            return
        due = self.clock() - self.last_at >= PIPED_EVERY_S
        if text != self.last_text and (due or final):
            self.out("\n" + text)
            self.last_text, self.last_at = text, self.clock()


def _print(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace, out: Callable[[str], None] = _print) -> int:
    missing = missing_pieces()
    if missing:
        out(
            "make run: cannot start the local stack, these parts are not installed yet:\n  "
            + "\n  ".join(missing)
        )
        return 1
    run_dir: Path = args.run_dir.resolve()
    if not args.database_dsn and run_dir.exists():
        shutil.rmtree(run_dir)  # every SQLite run starts from scratch
    run_dir.mkdir(parents=True, exist_ok=True)
    mqtt = broker_answers()
    layout = plan.Layout(
        run_dir=run_dir,
        dsn=args.database_dsn or plan.sqlite_dsn(run_dir),
        ports=plan.Ports.from_base(args.base_port),
        ntp_port=args.ntp_port,
        mqtt=mqtt,
        jwt_key=secrets.token_urlsafe(32) if mqtt else "",
        start_as=args.start_as,
    )
    stack = Stack(layout, out)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stack.stop_requested.set())
    try:
        out(f"make run: starting in {run_dir} (logs in {layout.logs})")
        stack.prepare_database()
        stack.seed()
        stack.start_responders()
        out(f"NTP responders on 127.100.0.1-9 port {stack.layout.ntp_port}")
        stack.start_api()
        out(f"monitor-api ready: {stack.ports}")
        out(f"status pages: {stack.pages_url}")
        stack.start_exporter()
        out(f"exporter running: ClickHouse {layout.clickhouse_dsn}")
        for index in range(len(plan.AGENT_ADDRESSES)):
            if stack.stop_requested.is_set():
                break
            stack.register_agent(index)
            address = plan.AGENT_ADDRESSES[index]
            out(f"agent-{index + 1} registered, approved and running on {address}")
        wait_for_measurements(stack, len(plan.AGENT_ADDRESSES), timeout=120)
        if not stack.stop_requested.is_set():
            stack.start_scoring()
            out("scorer and selector running")
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        printer = SummaryPrinter(out, interactive=sys.stdout.isatty())
        while not stack.stop_requested.is_set():
            stack.check_children()
            finished = deadline is not None and time.monotonic() >= deadline
            printer.show(stack.summary(), final=finished)
            if finished:
                break
            stack.stop_requested.wait(args.refresh)
        return 0
    except StackInterruptedError:
        out("make run: interrupted while starting")
        return 130
    except StackError as exc:
        out(f"make run: error: {exc}")
        return 1
    finally:
        stack.shutdown()


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))
