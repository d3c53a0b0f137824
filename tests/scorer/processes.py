"""Run ``monitor-scorer`` as a real subprocess against a test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from ntpmon.db.tables import log_scores, scorer_status, server_scores, servers

from .conftest import EV, M3, M4, RM, S1, S2, S3, World

PROGRAM = Path(sys.executable).with_name("monitor-scorer")


def command(*args: str) -> list[str]:
    if PROGRAM.exists():
        return [str(PROGRAM), *args]
    return [sys.executable, "-c", "from ntpmon.scorer.cli import main; main()", *args]


def environment(engine: Engine) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_DSN": engine.url.render_as_string(hide_password=False),
        "LOG_LEVEL": "warn",
    }


def run_cli(engine: Engine, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=environment(engine),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(engine: Engine, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command("scorer", "server", "--metrics-port", "0", *args),
        env=environment(engine),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def alternating_backlog(world: World, per_server: int) -> list[int]:
    """Rows where every input is 'new' for the dedup (ts rising, scores alternating 5/15).

    Whatever the dedup memory (fresh process or not), every input then yields one output
    row per scorer, so results can be compared row for row.
    """
    start = world.now - timedelta(minutes=per_server + 10)
    ids = []
    for i in range(per_server):
        for server, monitor in ((S1, M3), (S2, M4), (S3, M3)):
            score = 5.0 if i % 2 else 15.0
            ids.append(
                world.log(
                    server,
                    monitor,
                    score + server % 7,
                    0.5 - i % 3,
                    start + timedelta(minutes=i),
                    rtt=1000 + i,
                )
            )
    return ids


def snapshot(engine: Engine) -> dict[str, object]:
    """Everything the scorers wrote, with their own row ids replaced by what they stand for."""
    with engine.begin() as conn:
        ss_key = {
            r.id: (r.monitor_id, r.server_id)
            for r in conn.execute(
                select(server_scores.c.id, server_scores.c.monitor_id, server_scores.c.server_id)
            )
        }
        outputs = []
        for r in conn.execute(select(log_scores).where(log_scores.c.monitor_id.in_([RM, EV]))):
            attrs = json.loads(r.attributes) if r.attributes else None
            if attrs and "from_ss_id" in attrs:
                attrs["from_ss_id"] = ss_key[attrs["from_ss_id"]]
            outputs.append(
                (
                    r.monitor_id,
                    r.server_id,
                    r.ts,
                    r.score,
                    r.step,
                    r.offset,
                    r.rtt,
                    json.dumps(attrs, sort_keys=True),
                )
            )
        own = sorted(
            (r.monitor_id, r.server_id, r.score_ts, r.score_raw, r.status)
            for r in conn.execute(
                select(server_scores).where(server_scores.c.monitor_id.in_([RM, EV]))
            )
        )
        public = sorted(
            conn.execute(select(servers.c.id, servers.c.score_ts, servers.c.score_raw)).all()
        )
        cursors = sorted(
            conn.execute(select(scorer_status.c.scorer_id, scorer_status.c.log_score_id)).all()
        )
    return {"outputs": sorted(outputs, key=repr), "own": own, "servers": public, "cursors": cursors}
