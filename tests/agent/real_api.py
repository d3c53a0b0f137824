"""Helpers for tests against the real monitor-api: its admin CLI, in-process, and an agent
registered with it through ``setup``."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Engine

from ntpmon.agent.cli.setup import SetupRequest, run_setup
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.config.mgmt import ManagementClient
from ntpmon.api.cli import app as api_cli
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.cli import run_app


def admin(db: Engine, *args: str) -> None:
    """``monitor-api admin ...`` against the test database."""
    dsn = db.url.render_as_string(hide_password=False)
    assert run_app(api_cli, "monitor-api", ["admin", *args, "--database-dsn", dsn]) == 0


def register_agent(db: Engine, api_server: MonitorApiServer, tmp_path: Path) -> AppConfig:
    """``setup`` run to completion against ``api_server`` (state in ``tmp_path/state``); the
    operator approves with the admin CLI while it polls."""
    base = f"https://127.0.0.1:{api_server.ports['management']}"
    ca_file = tmp_path / "monitor-ca.pem"
    ca_file.write_text(api_server.ca.root_pem())
    cfg = AppConfig(
        DeploymentEnv.DEVEL,
        tmp_path / "state",
        management=ManagementClient(base, ca_file=str(ca_file)),
    )
    cfg.load()
    printed: list[str] = []

    def operator_approves(_seconds: float) -> None:
        match = re.search(r"/monitor/registration/([0-9A-Z]{26})", "".join(printed))
        assert match, printed
        admin(db, "registrations", "approve", match.group(1))

    run_setup(
        cfg,
        SetupRequest("agent-host", None, ipv4=True, ipv6=False),
        api_base=base,
        ca_file=str(ca_file),
        environ={},
        out=printed.append,
        sleep=operator_approves,
    )
    assert len(printed) == 1 and "Please visit the following URL" in printed[0]
    return cfg
