"""Queries shared by monitor-api and monitor-scorer (spec/database.md §4.1, Q1–Q5, Q36)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from ntpmon.common.clock import db_seconds
from ntpmon.db.driversql import insert_rows
from ntpmon.db.models import ServerScore, ServerScoreStatus, from_row
from ntpmon.db.tables import log_scores, server_scores, system_settings

RTT_MAX_US = 8_388_607  # a signed mediumint
RTT_MIN_US = -8_388_608


def get_system_setting(conn: Connection, *, key: str) -> str | None:
    """Q1: the JSON text stored under ``key``, or None; callers fall back to defaults."""
    return conn.execute(
        select(system_settings.c.value).where(system_settings.c.key == key)
    ).scalar_one_or_none()


def get_server_score(conn: Connection, *, server_id: int, monitor_id: int) -> ServerScore | None:
    """Q2: one (server, monitor) assignment row."""
    row = conn.execute(
        select(server_scores).where(
            server_scores.c.server_id == server_id, server_scores.c.monitor_id == monitor_id
        )
    ).first()
    return from_row(ServerScore, row) if row else None


def update_server_score(conn: Connection, *, id: int, score_ts: datetime, score_raw: float) -> int:
    """Q3: the running score of an assignment."""
    return conn.execute(
        update(server_scores)
        .where(server_scores.c.id == id)
        .values(score_ts=db_seconds(score_ts), score_raw=score_raw)
    ).rowcount


def clamp_rtt(rtt_us: int | None) -> int | None:
    """Keep an RTT inside the ``mediumint`` column instead of failing the whole batch."""
    if rtt_us is None:
        return None
    return max(RTT_MIN_US, min(RTT_MAX_US, rtt_us))


def bmp_only(value: str | None) -> str | None:
    """Replace characters outside the BMP: the production tables are ``utf8mb3``."""
    if value is None or value.isascii():
        return value
    return "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in value)


def log_score_values(
    *,
    server_id: int,
    monitor_id: int | None,
    ts: datetime,
    score: float,
    step: float,
    offset: float | None,
    rtt: int | None,
    attributes: str | None,
) -> dict[str, object]:
    """One ``log_scores`` row as insert values, with truncation, clamping and BMP cleaning."""
    return {
        "server_id": server_id,
        "monitor_id": monitor_id,
        "ts": db_seconds(ts),
        "score": score,
        "step": step,
        "offset": offset,
        "rtt": clamp_rtt(rtt),
        "attributes": bmp_only(attributes),
    }


def insert_log_score(
    conn: Connection,
    *,
    server_id: int,
    monitor_id: int | None,
    ts: datetime,
    score: float,
    step: float,
    offset: float | None = None,
    rtt: int | None = None,
    attributes: str | None = None,
) -> int:
    """Q4: append one measurement or computed score; returns the new id."""
    values = log_score_values(
        server_id=server_id,
        monitor_id=monitor_id,
        ts=ts,
        score=score,
        step=step,
        offset=offset,
        rtt=rtt,
        attributes=attributes,
    )
    result = conn.execute(insert(log_scores).values(**values))
    return int(result.inserted_primary_key[0])


def insert_log_scores(conn: Connection, rows: list[dict[str, object]]) -> int:
    """Many ``log_scores`` rows in one round trip (values from :func:`log_score_values`)."""
    return insert_rows(conn, log_scores, rows)


def update_server_score_status(
    conn: Connection, *, monitor_id: int, server_id: int, status: ServerScoreStatus | str
) -> int:
    """Q5: the per-server state of a monitor."""
    return conn.execute(
        update(server_scores)
        .where(server_scores.c.monitor_id == monitor_id, server_scores.c.server_id == server_id)
        .values(status=str(status))
    ).rowcount


def delete_server_score(conn: Connection, *, server_id: int, monitor_id: int) -> int:
    """Q36: remove a monitor's assignment to a server (admin tooling)."""
    return conn.execute(
        delete(server_scores).where(
            server_scores.c.server_id == server_id, server_scores.c.monitor_id == monitor_id
        )
    ).rowcount
