"""The scorer test world of spec/scorer.md §16 and helpers to read what the scorer wrote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from ntpmon.common.clock import FixedClock, db_seconds
from ntpmon.db.admin import set_system_setting
from ntpmon.db.common import insert_log_score
from ntpmon.db.models import LogScore, ServerScore, from_row
from ntpmon.db.tables import (
    accounts,
    log_scores,
    monitors,
    scorer_status,
    server_scores,
    servers,
)
from ntpmon.db.tx import RetryPolicy
from ntpmon.scorer.metrics import ScorerMetrics
from ntpmon.scorer.runner import Runner

RM, EV = 2001, 2002
M3, M4 = 2003, 2004
S1, S2, S3 = 3001, 3002, 3003
FAST_RETRY = RetryPolicy(initial=0.01, factor=1.5, max_interval=0.05, max_elapsed=0.5)


@dataclass
class World:
    """A database with the §16 fixture rows and a fixed clock."""

    engine: Engine
    clock: FixedClock
    seed_id: int = 0

    @property
    def now(self) -> datetime:
        return db_seconds(self.clock.now())

    def runner(self, **kw: object) -> Runner:
        kw.setdefault("metrics", ScorerMetrics())
        kw.setdefault("retry", FAST_RETRY)
        return Runner(self.engine, clock=self.clock, **kw)  # type: ignore[arg-type]

    def log(
        self,
        server: int,
        monitor: int | None,
        score: float,
        step: float,
        ts: datetime,
        *,
        rtt: int | None = None,
        offset: float | None = None,
        attributes: str | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            return insert_log_score(
                conn,
                server_id=server,
                monitor_id=monitor,
                ts=ts,
                score=score,
                step=step,
                offset=offset,
                rtt=rtt,
                attributes=attributes,
            )

    def add_monitor(self, id: int, *, type: str = "monitor", hostname: str = "") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(monitors).values(
                    id=id,
                    type=type,
                    hostname=hostname,
                    tls_name=f"m{id}.test" if type == "monitor" else f"{hostname}.scores.ntp.dev",
                    ip=f"198.51.100.{id % 250}" if type == "monitor" else None,
                    ip_version="v4" if type == "monitor" else None,
                    account_id=1001 if type == "monitor" else None,
                    status="active",
                    config="" if type == "score" else "{}",
                    created_on=self.now,
                )
            )

    def add_server(self, id: int, ip: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(servers).values(
                    id=id, ip=ip, ip_version="v6" if ":" in ip else "v4", created_on=self.now
                )
            )

    def assign(self, server: int, monitor: int, status: str, score_raw: float = 0.0) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(server_scores).values(
                    server_id=server,
                    monitor_id=monitor,
                    status=status,
                    score_raw=score_raw,
                    created_on=self.now,
                )
            )

    def set_cursor(self, scorer: int, log_score_id: int) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(scorer_status.c.id).where(scorer_status.c.scorer_id == scorer)
            ).first()
            if exists is None:
                conn.execute(
                    insert(scorer_status).values(
                        scorer_id=scorer, log_score_id=log_score_id, modified_on=self.now
                    )
                )
            else:
                conn.execute(
                    scorer_status.update()
                    .where(scorer_status.c.scorer_id == scorer)
                    .values(log_score_id=log_score_id)
                )

    def setting(self, value: object) -> None:
        with self.engine.begin() as conn:
            set_system_setting(conn, key="scorer", value=value, now=self.now)

    # reading back -------------------------------------------------------------------------

    def cursor(self, scorer: int) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                select(scorer_status.c.log_score_id).where(scorer_status.c.scorer_id == scorer)
            ).scalar_one()

    def outputs(self, scorer: int) -> list[LogScore]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(log_scores)
                .where(log_scores.c.monitor_id == scorer)
                .order_by(log_scores.c.id)
            )
            return [from_row(LogScore, r) for r in rows]

    def server_score(self, server: int, monitor: int) -> ServerScore | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(server_scores).where(
                    server_scores.c.server_id == server, server_scores.c.monitor_id == monitor
                )
            ).first()
            return from_row(ServerScore, row) if row else None

    def server(self, server: int) -> tuple[datetime | None, float]:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(servers.c.score_ts, servers.c.score_raw).where(servers.c.id == server)
            ).one()
            return row.score_ts, row.score_raw


def build_world(engine: Engine, clock: FixedClock, *, scorers: tuple[int, ...] = (RM, EV)) -> World:
    """The §16 fixture: accounts, scorers 2001/2002, monitors 2003/2004, servers 3001-3003."""
    world = World(engine, clock)
    with engine.begin() as conn:
        for account in (1001, 1002):
            conn.execute(
                insert(accounts).values(id=account, name=f"acct{account}", created_on=world.now)
            )
    if RM in scorers:
        world.add_monitor(RM, type="score", hostname="recentmedian")
    if EV in scorers:
        world.add_monitor(EV, type="score", hostname="every")
    world.add_monitor(M3)
    world.add_monitor(M4)
    world.add_server(S1, "192.0.2.1")
    world.add_server(S2, "192.0.2.2")
    world.add_server(S3, "2001:db8::1")
    if RM in scorers:
        world.assign(S1, RM, "candidate", 0)
    if EV in scorers:
        world.assign(S2, EV, "candidate", 0)
    world.assign(S1, M3, "active", 20)
    world.assign(S2, M4, "active", 19.5)
    world.assign(S3, M3, "active", 18)
    world.setting({"batch_size": 100})
    world.seed_id = world.log(S1, M3, 20.0, 0.8, world.now - timedelta(hours=1))
    for scorer in scorers:
        world.set_cursor(scorer, world.seed_id)
    return world


@pytest.fixture
def world(db: Engine, clock: FixedClock) -> Iterator[World]:
    yield build_world(db, clock)
