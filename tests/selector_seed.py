"""Seeding a server with its monitors for the selector's database tests.

Seed inside ``with db.begin() as conn`` and let it commit before the selector runs: SQLite
allows one writer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from ntpmon.db import selector as q
from ntpmon.db.admin import (
    assign_monitor_to_servers,
    create_account,
    create_monitor,
    create_server,
    set_monitor_status,
)
from ntpmon.db.common import insert_log_scores, log_score_values, update_server_score_status
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import server_scores, servers_monitor_review


@dataclass
class SeededMonitor:
    label: int
    id: int
    tls_name: str


@dataclass
class Seeder:
    """Builds one server and its monitors through ntpmon's own db functions."""

    conn: Connection
    now: datetime
    tag: str = ""  # keeps names unique when several seeders share a database
    server_id: int = 0
    monitors: dict[int, SeededMonitor] = field(default_factory=dict)
    accounts: dict[int, int] = field(default_factory=dict)

    def account(self, label: int | None, flags: dict | None = None) -> int | None:
        if label is None:
            return None
        if label not in self.accounts:
            self.accounts[label] = create_account(
                self.conn, name=f"account {label}", now=self.now, flags=flags
            )
        return self.accounts[label]

    def server(self, ip: str, account: int | None = None) -> int:
        self.server_id = create_server(
            self.conn, ip=ip, now=self.now, account_id=self.account(account)
        )
        return self.server_id

    def monitor(
        self,
        label: int,
        ip: str,
        *,
        status: str | None = "candidate",
        global_status: str = "active",
        account: int | None = None,
        priority: int = 10,
        count: int = 40,
        healthy: bool = True,
        flags: dict | None = None,
    ) -> int:
        """A monitor with ``count`` log scores in the last 24 h giving ``priority``.

        All steps 1 make priority = average rtt in ms; unhealthy uses step -1 (priority 5×).
        ``status`` None leaves the monitor without a server_scores row.
        """
        tls_name = f"mon{label}{self.tag}.test"
        mid = create_monitor(
            self.conn,
            tls_name=tls_name,
            ip=ip,
            now=self.now,
            account_id=self.account(account, flags),
            status=MonitorStatus.ACTIVE,
            id_token=f"tok-{label}{self.tag}",
        )
        if status is not None:
            assign_monitor_to_servers(self.conn, monitor_id=mid, now=self.now)
            update_server_score_status(
                self.conn, monitor_id=mid, server_id=self.server_id, status=status
            )
        if global_status != "active":
            set_monitor_status(self.conn, id=mid, status=MonitorStatus(global_status), now=self.now)
        times = [self.now - timedelta(minutes=10 * (i + 1)) for i in range(count)]
        self.logs(mid, times, rtt=priority * 1000, step=1.0 if healthy else -1.0)
        self.monitors[label] = SeededMonitor(label, mid, tls_name)
        return mid

    def logs(
        self, monitor_id: int, times: list[datetime], *, rtt: int | None, step: float = 1.0
    ) -> None:
        """One log score per time for ``monitor_id`` on this seeder's server."""
        rows = [
            log_score_values(
                server_id=self.server_id,
                monitor_id=monitor_id,
                ts=ts,
                score=0.0,
                step=step,
                offset=0.0,
                rtt=rtt,
                attributes=None,
            )
            for ts in times
        ]
        insert_log_scores(self.conn, rows)

    def store_violation(
        self,
        label: int,
        vtype: str,
        since: datetime,
        *,
        last_check: datetime | None = None,
        pause_reason: str | None = None,
    ) -> None:
        mid = self.monitors[label].id
        q.update_server_score_constraint_violation(
            self.conn, server_id=self.server_id, monitor_id=mid, type=vtype, since=since
        )
        if pause_reason is not None and last_check is not None:
            q.update_server_score_pause_reason(
                self.conn,
                server_id=self.server_id,
                monitor_id=mid,
                pause_reason=pause_reason,
                now=last_check,
            )


def assignment(conn: Connection, server_id: int, monitor_id: int) -> dict:
    row = conn.execute(
        select(server_scores).where(
            server_scores.c.server_id == server_id, server_scores.c.monitor_id == monitor_id
        )
    ).one()
    return dict(row._mapping)


def review_row(conn: Connection, server_id: int) -> dict:
    smr = servers_monitor_review
    return dict(conn.execute(select(smr).where(smr.c.server_id == server_id)).one()._mapping)
