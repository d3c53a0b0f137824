"""Generated scorer backlogs: a pool of monitors and servers and their log_scores over time.

Shared by the scorer's process tests and ``bench/scorer_throughput.py``. Rows come in
timestamp order (as the API inserts them), each (monitor, server) pair sampled every
``interval`` with jitter, scores accumulated with the real status-score steps.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert

from ntpmon.common.clock import db_seconds
from ntpmon.db.common import insert_log_scores, log_score_values
from ntpmon.db.tables import monitors, server_scores, servers
from ntpmon.scorer.statusscore import Measurement, score

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Pool:
    """Monitor and server ids, and each server's (monitor, assignment status) list."""

    monitor_ids: tuple[int, ...]
    server_ids: tuple[int, ...]
    assignments: dict[int, tuple[tuple[int, str], ...]]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(m, s) for s, a in self.assignments.items() for m, _ in a]


def _chunks(rows: list[dict[str, object]], size: int) -> Iterator[list[dict[str, object]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def create_pool(
    engine: Engine,
    *,
    monitors_count: int,
    servers_count: int,
    per_server: int,
    now: datetime,
    rng: random.Random,
    first_monitor_id: int = 100_000,
    first_server_id: int = 200_000,
) -> Pool:
    """Insert agent monitors, servers and per-server assignments (60 % active, 30 % testing)."""
    created = db_seconds(now)
    monitor_ids = tuple(range(first_monitor_id, first_monitor_id + monitors_count))
    server_ids = tuple(range(first_server_id, first_server_id + servers_count))
    statuses = ["active"] * round(per_server * 0.6) + ["testing"] * round(per_server * 0.3)
    statuses += ["candidate"] * (per_server - len(statuses))
    assignments = {
        s: tuple(zip(rng.sample(monitor_ids, per_server), statuses, strict=True))
        for s in server_ids
    }
    monitor_rows: list[dict[str, object]] = [
        {
            "id": m,
            "type": "monitor",
            "tls_name": f"bench{m}.test",
            "ip": f"10.{(m >> 16) & 255}.{(m >> 8) & 255}.{m & 255}",
            "ip_version": "v4",
            "status": "active",
            "config": "{}",
            "hostname": "",
            "created_on": created,
        }
        for m in monitor_ids
    ]
    server_rows: list[dict[str, object]] = [
        {
            "id": s,
            "ip": f"172.{(s >> 16) & 15 | 16}.{(s >> 8) & 255}.{s & 255}",
            "ip_version": "v4",
            "created_on": created,
        }
        for s in server_ids
    ]
    score_rows: list[dict[str, object]] = [
        {"server_id": s, "monitor_id": m, "status": st, "score_raw": 0.0, "created_on": created}
        for s, a in assignments.items()
        for m, st in a
    ]
    with engine.begin() as conn:
        for table, rows in (
            (monitors, monitor_rows),
            (servers, server_rows),
            (server_scores, score_rows),
        ):
            for part in _chunks(rows, 5000):
                conn.execute(insert(table), part)
    return Pool(monitor_ids, server_ids, assignments)


def _sample(rng: random.Random, ts: datetime) -> Measurement:
    r = rng.random()
    rtt = rng.randrange(5, 250) * 1_000_000
    if r < 0.02:
        return Measurement(ts=ts, offset_ns=None, rtt_ns=0, stratum=0, no_response=True)
    if r < 0.03:
        return Measurement(ts=ts, offset_ns=None, rtt_ns=rtt, stratum=0, error="RATE")
    if r < 0.10:
        offset = rng.randrange(25_000_000, 900_000_000) * rng.choice((1, -1))
        return Measurement(ts=ts, offset_ns=offset, rtt_ns=rtt, stratum=2, leap=int(r < 0.04))
    return Measurement(ts=ts, offset_ns=rng.randrange(-5_000_000, 5_000_000), rtt_ns=rtt, stratum=2)


def measurements(
    pool: Pool,
    *,
    start: datetime,
    end: datetime,
    interval: timedelta,
    rng: random.Random,
) -> Iterator[dict[str, object]]:
    """log_scores insert values for every pair, in timestamp order, until ``end``."""
    state: dict[tuple[int, int], float] = {}
    heap: list[tuple[datetime, int, int]] = []
    step_s = int(interval.total_seconds())
    for monitor, server in pool.pairs:
        first = start + timedelta(seconds=rng.randrange(step_s))
        heap.append((first, monitor, server))
        state[(monitor, server)] = rng.uniform(10.0, 20.0)
    heapq.heapify(heap)
    while heap:
        ts, monitor, server = heapq.heappop(heap)
        if ts >= end:
            continue
        result = score(_sample(rng, ts))
        value = result.accumulate(state[(monitor, server)])
        state[(monitor, server)] = value
        yield log_score_values(
            server_id=server,
            monitor_id=monitor,
            ts=ts,
            score=value,
            step=result.step,
            offset=result.offset_s,
            rtt=result.rtt_us,
            attributes=result.attributes,
        )
        jitter = rng.randrange(-step_s // 10, step_s // 10 + 1)
        heapq.heappush(heap, (ts + timedelta(seconds=step_s + jitter), monitor, server))


def insert_rows(engine: Engine, rows: Iterable[dict[str, object]], *, chunk: int = 20_000) -> int:
    """Insert in large multi-row chunks, one transaction each; returns the number inserted."""
    total = 0
    buffer: list[dict[str, object]] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= chunk:
            with engine.begin() as conn:
                total += insert_log_scores(conn, buffer)
            buffer = []
    if buffer:
        with engine.begin() as conn:
            total += insert_log_scores(conn, buffer)
    return total
