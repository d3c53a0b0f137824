"""Bulk inserts (``driversql.insert_rows``): multi-row statements of bounded size, rows read
back exactly (quotes, backslashes, ``%``, non-BMP text, NULLs, extreme floats)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from ntpmon.db import driversql
from ntpmon.db.common import insert_log_scores, log_score_values
from ntpmon.db.tables import log_scores, monitors, servers
from ntpmon.testing.roundtrips import counting_round_trips

pytestmark = pytest.mark.db
NOW = datetime(2026, 11, 26, 12, 0, 0)
TRICKY = [
    "it's a 'quote' and \\ backslash",
    '{"a": "100%", "b": "%s", "c": "%(x)s"}',
    "non-BMP \U0001f600 and ünïcödé",
    None,
]


def seed(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            monitors.insert().values(
                id=10, type="monitor", hostname="m", location="", tls_name="m",
                status="active", config="", client_version="", created_on=NOW,
            )
        )  # fmt: skip
        conn.execute(
            servers.insert().values(id=3001, ip="192.0.2.1", ip_version="v4", created_on=NOW)
        )


def rows(n: int, score: float | None = None) -> list[dict[str, object]]:
    return [
        log_score_values(
            server_id=3001,
            monitor_id=10 if i % 3 else None,
            ts=NOW - timedelta(seconds=i),
            score=[0.1, -0.0, 5e-324, 19.999999999999996][i % 4] if score is None else score,
            step=1.0,
            offset=None if i % 2 else i * 1e-9,
            rtt=None if i % 5 == 0 else i * 1000,
            attributes=TRICKY[i % len(TRICKY)],
        )
        for i in range(n)
    ]


def test_rows_read_back_exactly_in_bounded_statements(db: Engine) -> None:
    seed(db)
    written = rows(2 * driversql.ROWS_PER_STATEMENT + 500)
    with counting_round_trips(db) as trips, db.begin() as conn:
        assert insert_log_scores(conn, written) == len(written)
    if db.dialect.driver == driversql.DRIVER:
        assert trips["INSERT"] == 3
    with db.begin() as conn:
        c = log_scores.c
        stored = conn.execute(
            select(
                c.monitor_id, c.server_id, c.ts, c.score, c.step, c.offset, c.rtt, c.attributes
            ).order_by(c.id)
        ).all()
    expected = [
        (r["monitor_id"], r["server_id"], r["ts"], r["score"], r["step"], r["offset"], r["rtt"],
         r["attributes"])
        for r in written
    ]  # fmt: skip
    assert [tuple(s) for s in stored] == expected


def test_a_value_mysql_cannot_store_fails_before_anything_is_written(db: Engine) -> None:
    """PyMySQL refuses to write a NaN; SQLite turns it into NULL, which ``score`` refuses."""
    seed(db)
    refusal = "can not be used with MySQL" if db.dialect.driver == driversql.DRIVER else "NOT NULL"
    with pytest.raises(DBAPIError, match=refusal), db.begin() as conn:
        insert_log_scores(conn, rows(10) + rows(1, score=float("nan")))
    with db.begin() as conn:
        assert conn.execute(select(log_scores.c.id)).all() == []


def test_nothing_to_insert_sends_nothing(db: Engine) -> None:
    with counting_round_trips(db) as trips, db.begin() as conn:
        assert insert_log_scores(conn, []) == 0
    assert trips["INSERT"] == 0
