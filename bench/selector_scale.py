"""Selector at pool scale: 10,000 servers and 300 monitors.

1. The pure engine (``plan_server``): time per server for a typical server (20 monitors with
   data) and for a worst case where all 300 monitors have data for one server.
2. The whole pool reviewed through MariaDB: a temporary database is seeded with the 24 h
   ``log_scores`` input (multi-row inserts), then ``review_batch`` runs until no server is due,
   and a second pass one hour later (the steady state after the first pass's changes).

Targets (issue 7): <= 2 ms per server in the engine, the whole pool in < 60 s.
Run: ``python bench/selector_scale.py [--servers N] [--skip-db]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, insert

from ntpmon.common.clock import FixedClock, db_seconds
from ntpmon.db.selector import monitor_priority, mysql_avg_rtt_ms, priority_sort_key
from ntpmon.db.tables import accounts, log_scores, monitors, server_scores, servers
from ntpmon.db.tables import servers_monitor_review as review_table
from ntpmon.selector import MonitorRow, ServerInfo, plan_server
from ntpmon.selector.metrics import SelectorMetrics
from ntpmon.selector.service import review_batch
from ntpmon.testing.databases import temporary_mysql_database

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
MONITORS = 300
ACCOUNTS = 150
PER_SERVER = (("active", 7, 32), ("testing", 5, 32), ("candidate", 7, 9), ("paused", 1, 9))
INSERT_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class Assignment:
    """One monitor's 24 h of data for one server (constant rtt and step per assignment)."""

    server_id: int
    monitor_id: int
    status: str
    count: int
    rtt_us: int
    step: float


@dataclass
class Pool:
    monitor_ips: dict[int, str]
    monitor_status: dict[int, str]
    monitor_account: dict[int, int]
    account_flags: dict[int, str | None]
    server_ips: dict[int, str]
    server_account: dict[int, int | None]
    assignments: dict[int, list[Assignment]]


def build_pool(n_servers: int, seed: int = 7) -> Pool:
    """A deterministic synthetic pool with a realistic mix of constraints and health."""
    rng = random.Random(seed)
    monitor_ips, monitor_status, monitor_account = {}, {}, {}
    for m in range(1, MONITORS + 1):
        if m % 25 == 0:  # shares the /20 of its predecessor: diversity violations
            monitor_ips[m] = f"10.{(m - 1) // 4}.{((m - 1) % 4) * 64}.2"
        else:
            monitor_ips[m] = f"10.{m // 4}.{(m % 4) * 64}.1"
        status = "active"
        if m % 50 == 0:
            status = "testing"
        elif m % 97 == 0:
            status = "paused"
        elif m % 89 == 0:
            status = "deleted"
        monitor_status[m] = status
        monitor_account[m] = (m % ACCOUNTS) + 1
    account_flags = {
        a: json.dumps({"monitors_per_server_limit": 3}) if a % 10 == 0 else None
        for a in range(1, ACCOUNTS + 1)
    }
    base_rtt = {m: rng.uniform(5.0, 150.0) for m in monitor_ips}
    server_ips, server_account, assignments = {}, {}, {}
    for s in range(1, n_servers + 1):
        server_ips[s] = f"198.{18 + s // 65536}.{(s // 256) % 256}.{s % 256}"
        server_account[s] = (s % ACCOUNTS) + 1 if s % 50 == 0 else None
        chosen = rng.sample(range(1, MONITORS + 1), sum(n for _, n, _ in PER_SERVER))
        rows, i = [], 0
        for status, n, count in PER_SERVER:
            for m in chosen[i : i + n]:
                step = -1.0 if rng.random() < 0.04 else (0.5 if rng.random() < 0.1 else 1.0)
                rtt = int(base_rtt[m] * 1000 * rng.uniform(0.8, 1.2))
                rows.append(Assignment(s, m, status, count + rng.randrange(4), rtt, step))
            i += n
        assignments[s] = rows
    return Pool(
        monitor_ips,
        monitor_status,
        monitor_account,
        account_flags,
        server_ips,
        server_account,
        assignments,
    )


def monitor_rows(pool: Pool, server_id: int, assignments: list[Assignment]) -> list[MonitorRow]:
    """The rows Q31 would return for these assignments, in its order."""
    rows = []
    for a in assignments:
        avg = mysql_avg_rtt_ms(a.rtt_us * a.count, a.count)
        account = pool.monitor_account[a.monitor_id]
        rows.append(
            MonitorRow(
                id=a.monitor_id,
                monitor_ip=pool.monitor_ips[a.monitor_id],
                status=a.status,
                monitor_status=pool.monitor_status[a.monitor_id],
                account_id=account,
                id_token=f"tok-{a.monitor_id}",
                tls_name=f"mon{a.monitor_id}.bench",
                avg_rtt=float(avg) if avg is not None else None,
                monitor_priority=monitor_priority(avg, a.step),
                avg_step=a.step,
                healthy=a.step >= 0,
                count=a.count,
                account_flags=pool.account_flags[account],
                pause_reason="constraint" if a.status == "paused" else None,
                last_constraint_check=(NOW - timedelta(hours=9)).replace(tzinfo=None)
                if a.status == "paused"
                else None,
            )
        )
    rows.sort(key=priority_sort_key)
    return rows


def server_info(pool: Pool, sid: int) -> ServerInfo:
    return ServerInfo(sid, pool.server_account[sid], pool.server_ips[sid], "v4")


def time_engine(pool: Pool, inputs: dict[int, list[MonitorRow]]) -> tuple[list[float], float, int]:
    """Wall time per server, and the process CPU time of the whole run (the machine may be
    shared: CPU time is the figure contention does not inflate)."""
    durations, changes = [], 0
    cpu_started = time.process_time()
    for sid, rows in inputs.items():
        server = server_info(pool, sid)
        started = time.perf_counter()
        plan = plan_server(server, rows, NOW)
        durations.append(time.perf_counter() - started)
        changes += len(plan.status_changes)
    return durations, time.process_time() - cpu_started, changes


def worst_case_inputs(pool: Pool, n: int) -> dict[int, list[MonitorRow]]:
    """Servers where every one of the 300 monitors has data (mostly candidates)."""
    rng = random.Random(11)
    inputs = {}
    for sid in list(pool.server_ips)[:n]:
        order = rng.sample(range(1, MONITORS + 1), MONITORS)
        statuses = ["active"] * 7 + ["testing"] * 5 + ["paused"] * 8
        statuses += ["candidate"] * (MONITORS - len(statuses))
        assignments = [
            Assignment(sid, m, st, 40, rng.randrange(5_000, 150_000), 1.0)
            for m, st in zip(order, statuses, strict=True)
        ]
        inputs[sid] = monitor_rows(pool, sid, assignments)
    return inputs


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f}"


def report_engine(label: str, durations: list[float], cpu: float, rows: int, changes: int) -> None:
    qs = statistics.quantiles(durations, n=100)
    total, n = sum(durations), len(durations)
    print(
        f"{label:<28} {n:>7} {rows:>5} {total:>7.2f} {ms(total / n)} {ms(qs[49])}"
        f" {ms(qs[98])} {ms(cpu / n)} {changes:>8}"
    )


def seed_database(engine: Engine, pool: Pool) -> tuple[int, float]:
    """Accounts, monitors, servers, assignments, review rows and the 24 h of log scores."""
    created = db_seconds(NOW - timedelta(days=30))
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            insert(accounts),
            [
                {"id": a, "name": f"account {a}", "flags": f, "created_on": created}
                for a, f in pool.account_flags.items()
            ],
        )
        conn.execute(
            insert(monitors),
            [
                {
                    "id": m,
                    "type": "monitor",
                    "account_id": pool.monitor_account[m],
                    "ip": ip,
                    "ip_version": "v4",
                    "tls_name": f"mon{m}.bench",
                    "id_token": f"tok-{m}",
                    "status": pool.monitor_status[m],
                    "config": "{}",
                    "created_on": created,
                }
                for m, ip in pool.monitor_ips.items()
            ],
        )
        conn.execute(
            insert(servers),
            [
                {
                    "id": s,
                    "ip": ip,
                    "ip_version": "v4",
                    "account_id": pool.server_account[s],
                    "created_on": created,
                }
                for s, ip in pool.server_ips.items()
            ],
        )
        conn.execute(insert(review_table), [{"server_id": s} for s in pool.server_ips])
        paused_check = db_seconds(NOW - timedelta(hours=9))
        conn.execute(
            insert(server_scores),
            [
                {
                    "server_id": a.server_id,
                    "monitor_id": a.monitor_id,
                    "status": a.status,
                    "created_on": created,
                    "pause_reason": "constraint" if a.status == "paused" else None,
                    "last_constraint_check": paused_check if a.status == "paused" else None,
                }
                for rows in pool.assignments.values()
                for a in rows
            ],
        )
    log_rows = 0
    batch: list[dict[str, object]] = []
    window = int(timedelta(hours=23).total_seconds())
    with engine.begin() as conn:
        for rows in pool.assignments.values():
            for a in rows:
                spacing = window // a.count
                for k in range(a.count):
                    batch.append(
                        {
                            "server_id": a.server_id,
                            "monitor_id": a.monitor_id,
                            "ts": db_seconds(NOW - timedelta(seconds=60 + k * spacing)),
                            "score": 0.0,
                            "step": a.step,
                            "rtt": a.rtt_us,
                        }
                    )
                if len(batch) >= INSERT_CHUNK:
                    conn.execute(insert(log_scores), batch)
                    log_rows += len(batch)
                    batch = []
        if batch:
            conn.execute(insert(log_scores), batch)
            log_rows += len(batch)
    return log_rows, time.perf_counter() - started


def statement_kind(statement: str) -> str:
    """A short name for a statement of the review, for the time breakdown."""
    head = " ".join(statement.split()[:2]).upper()
    if "agg" in statement:
        return "Q31 monitor priority"
    if head.startswith("UPDATE SERVER_SCORES"):
        return "server_scores updates"
    if head.startswith("UPDATE SERVERS_MONITOR_REVIEW"):
        return "Q28/Q29 reschedule"
    if "FROM servers_monitor_review" in statement:
        return "Q27 due servers"
    if "FROM servers" in statement:
        return "Q30 server"
    return "other"


@dataclass
class StatementTimer:
    """Time spent inside the database driver per kind of statement (SQLAlchemy events)."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def detach(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self._before)
        event.remove(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        kind = statement_kind(statement)
        took = time.perf_counter() - conn.info.pop("bench_started")
        self.seconds[kind] = self.seconds.get(kind, 0.0) + took
        self.counts[kind] = self.counts.get(kind, 0) + 1


def review_pool(engine: Engine, clock: FixedClock) -> tuple[int, int, float, float, StatementTimer]:
    """Review until no server is due: servers, changes, wall s, selector CPU s, DB times."""
    metrics = SelectorMetrics(CollectorRegistry())
    timer = StatementTimer()
    timer.attach(engine)
    reviewed = changes = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        while True:
            reviews = review_batch(engine, clock, metrics)
            if not reviews:
                break
            reviewed += len(reviews)
            changes += sum(len(r.result.applied) for r in reviews if r.result)
    finally:
        timer.detach(engine)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return reviewed, changes, wall, cpu, timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--skip-db", action="store_true", help="only the pure engine")
    args = parser.parse_args()

    pool = build_pool(args.servers)
    typical = {sid: monitor_rows(pool, sid, rows) for sid, rows in pool.assignments.items()}
    worst = worst_case_inputs(pool, min(500, args.servers))
    print(f"pool: {args.servers} servers, {MONITORS} monitors, {ACCOUNTS} accounts")
    print()
    print(
        "pure engine (plan_server)    servers  rows  wall s  mean ms   p50 ms   p99 ms"
        "   cpu ms  changes"
    )
    durations, cpu, changes = time_engine(pool, typical)
    report_engine("typical server", durations, cpu, 20, changes)
    durations, cpu, changes = time_engine(pool, worst)
    report_engine("all 300 monitors with data", durations, cpu, MONITORS, changes)
    print("target: <= 2 ms per server")
    if args.skip_db:
        return

    print()
    with temporary_mysql_database("ntpmon_bench") as engine:
        log_rows, seed_s = seed_database(engine, pool)
        print(
            f"MariaDB seed: {log_rows} log_scores rows in {seed_s:.1f} s"
            f" ({log_rows / seed_s:,.0f} rows/s, multi-row inserts)"
        )
        print()
        print(
            "full review through MariaDB  servers  changes   wall s  ms/server  servers/s"
            "  selector cpu s"
        )
        clock = FixedClock(NOW)
        timers: list[tuple[str, StatementTimer]] = []
        for label in ("first pass", "second pass (+61 min)"):
            reviewed, applied, took, cpu, timer = review_pool(engine, clock)
            per_server = took / reviewed * 1000
            print(
                f"{label:<28} {reviewed:>7} {applied:>8} {took:>8.2f} {per_server:>10.3f}"
                f" {reviewed / took:>10.0f} {cpu:>15.2f}"
            )
            timers.append((label, timer))
            clock.advance(timedelta(minutes=61))
        print()
        print("time inside the database driver, by statement   (pass: statements, seconds)")
        for label, timer in timers:
            parts = [
                f"{kind}: {timer.counts[kind]}, {secs:.1f} s"
                for kind, secs in sorted(timer.seconds.items(), key=lambda kv: -kv[1])
            ]
            print(f"  {label}: " + "; ".join(parts))
        print("target: whole pool < 60 s")


if __name__ == "__main__":
    main()
