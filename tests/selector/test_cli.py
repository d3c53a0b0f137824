"""``monitor-scorer selector once|simulate|server`` against a real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
from selector_seed import Seeder, assignment
from sqlalchemy import Engine

from ntpmon.common.cli import run_app
from ntpmon.scorer.cli import app

pytestmark = pytest.mark.db


def dsn_of(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


def seed_server(db: Engine) -> Seeder:
    """A server whose only active monitor sits in its /24 and a testing one to replace it."""
    now = datetime.now(UTC)
    with db.begin() as conn:
        seed = Seeder(conn, now)
        seed.server("192.0.2.10")
        seed.monitor(1, "192.0.2.77", status="active", priority=5, count=40)
        seed.monitor(2, "10.16.0.1", status="testing", priority=9, count=40)
    return seed


def test_simulate_prints_the_plan_and_writes_nothing(
    db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = seed_server(db)
    argv = ["selector", "simulate", str(seed.server_id), "-v", "--database-dsn", dsn_of(db)]

    assert run_app(app, "monitor-scorer", argv) == 0

    out = capsys.readouterr().out
    m1, m2 = seed.monitors[1].id, seed.monitors[2].id
    assert f"monitor {m1} (mon1.test): active -> testing (gradual removal" in out
    assert f"monitor {m2} (mon2.test): testing -> active (emergency" not in out
    assert "violation=network_same_subnet" in out
    assert "would apply changes: yes" in out
    with db.connect() as conn:
        assert assignment(conn, seed.server_id, m1)["status"] == "active"


def test_once_with_server_id_applies_the_plan(
    db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = seed_server(db)
    argv = ["selector", "once", str(seed.server_id), "--database-dsn", dsn_of(db)]

    assert run_app(app, "monitor-scorer", argv) == 0

    assert f"server {seed.server_id}: " in capsys.readouterr().out
    with db.connect() as conn:
        assert assignment(conn, seed.server_id, seed.monitors[1].id)["status"] == "paused"


def test_once_reviews_a_batch(db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    seed_server(db)
    assert run_app(app, "monitor-scorer", ["selector", "once", "--database-dsn", dsn_of(db)]) == 0
    assert "reviewed 1 server(s)" in capsys.readouterr().out


def test_unknown_server_is_one_line_error(db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["selector", "simulate", "999999", "--database-dsn", dsn_of(db)]
    assert run_app(app, "monitor-scorer", argv) == 1
    assert capsys.readouterr().err.strip() == "monitor-scorer: error: server 999999 not found"


def test_server_loop_serves_metrics_and_stops_on_sigterm(db: Engine) -> None:
    seed = seed_server(db)
    cmd = [
        sys.executable,
        "-c",
        "from ntpmon.scorer.cli import main; main()",
        "selector",
        "server",
        "--metrics-port",
        "0",
        "--database-dsn",
        dsn_of(db),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # the default binds all addresses (docs/operations.md §2.1); scrape it over loopback
        assert line.startswith("selector metrics on http://0.0.0.0:"), line
        url = line.split()[-1].replace("0.0.0.0", "127.0.0.1")
        body = ""
        for _ in range(100):
            body = httpx.get(url, timeout=5).text
            if f'selector_changes_applied_total{{server_id="{seed.server_id}"}}' in body:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        assert f'selector_changes_applied_total{{server_id="{seed.server_id}"}} 2.0' in body
        assert "selector_build_info" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
