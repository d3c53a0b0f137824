"""Seed a database with servers, monitors, scorer cursors and many ``log_scores`` rows.

Shared by the analytics tests and the exporter / retention benchmarks, which need the same
shape of data (an agent monitor's rows, one a minute per server, ids rising with ts) at very
different sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from ntpmon.db.driversql import insert_rows
from ntpmon.db.tables import log_scores, monitors, scorer_status, servers

AGENT = 2003
SCORER = 2001
CHUNK = 20_000


def seed_world(engine: Engine, *, servers_count: int, now: datetime) -> list[int]:
    """Servers 3001…, an agent monitor and a recentmedian scorer; returns the server ids."""
    ids = [3001 + i for i in range(servers_count)]
    created = now.replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            insert(servers),
            [
                {"id": i, "ip": f"10.0.{i // 256 % 256}.{i % 256}", "created_on": created}
                for i in ids
            ],
        )
        for monitor_id, kind, name in ((AGENT, "monitor", "m1"), (SCORER, "score", "recentmedian")):
            conn.execute(
                insert(monitors).values(
                    id=monitor_id,
                    type=kind,
                    hostname=name,
                    tls_name=f"{name}.test",
                    status="active",
                    config="",
                    created_on=created,
                )
            )
    return ids


def _rows(server_ids: list[int], start: datetime, count: int, spacing: timedelta) -> Iterator[dict]:
    for i in range(count):
        yield {
            "monitor_id": AGENT,
            "server_id": server_ids[i % len(server_ids)],
            "ts": (start + spacing * i).replace(tzinfo=None, microsecond=0),
            "score": 20.0 - (i % 40) / 2,
            "step": 1.0 - (i % 7) / 10,
            "offset": (i % 11) / 1000 - 0.005,
            "rtt": 1000 + i % 5000,
            "attributes": None if i % 9 else '{"leap":1}',
        }


def seed_log_scores(
    engine: Engine,
    server_ids: list[int],
    *,
    start: datetime,
    count: int,
    spacing: timedelta = timedelta(seconds=1),
) -> tuple[int, int]:
    """Insert ``count`` agent rows from ``start`` on, ``spacing`` apart.

    Returns the table's lowest and highest id.
    """
    rows = _rows(server_ids, start, count, spacing)
    while True:
        chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
        if not chunk:
            break
        with engine.begin() as conn:
            insert_rows(conn, log_scores, chunk)
    with engine.connect() as conn:
        first = conn.execute(select(log_scores.c.id).order_by(log_scores.c.id).limit(1))
        last = conn.execute(select(log_scores.c.id).order_by(log_scores.c.id.desc()).limit(1))
        return int(first.scalar_one()), int(last.scalar_one())


def set_scorer_cursor(engine: Engine, log_score_id: int) -> None:
    """Point the scorer's cursor at ``log_score_id`` (creating the cursor row once)."""
    with engine.begin() as conn:
        found = conn.execute(
            select(scorer_status.c.id).where(scorer_status.c.scorer_id == SCORER)
        ).first()
        if found is None:
            conn.execute(insert(scorer_status).values(scorer_id=SCORER, log_score_id=log_score_id))
        else:
            conn.execute(
                update(scorer_status)
                .where(scorer_status.c.scorer_id == SCORER)
                .values(log_score_id=log_score_id)
            )


def seed_traceroutes(
    engine: Engine, server_ids: list[int], *, start: datetime, count: int
) -> list[int]:
    """Store ``count`` traces by the agent monitor, a minute apart, through the API's own
    :func:`~ntpmon.db.traceroutes.insert_traceroute` (so the rows have the stored JSON shape).

    Every third trace reaches its server; the reason alternates. Returns the ids in order.
    """
    from ntpmon.db.traceroutes import insert_traceroute
    from ntpmon.traceroute.result import Hop, StopReason, TraceResult

    ids = []
    with engine.begin() as conn:
        for i in range(count):
            reached = i % 3 == 0
            hops = tuple(
                Hop(
                    ttl, f"192.0.2.{ttl}", (100 * ttl, None, 90 * ttl), reached=reached and ttl == 4
                )
                for ttl in range(1, 5 if reached else 2 + i % 6)
            )
            started = start + timedelta(minutes=i)
            result = TraceResult(
                target=f"10.0.0.{i % 250 + 1}",
                port=123,
                started=started,
                hops=hops,
                stop=StopReason.REACHED if reached else StopReason.SILENT,
            )
            ids.append(
                insert_traceroute(
                    conn,
                    monitor_id=AGENT,
                    server_id=server_ids[i % len(server_ids)],
                    result=result,
                    reason="health" if i % 2 else "periodic",
                    now=started + timedelta(seconds=30),
                )
            )
    return ids
