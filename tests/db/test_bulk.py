"""Rendered multi-row INSERTs: the same SQL literals as PyMySQL, the same stored rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pymysql.converters import escape_item
from sqlalchemy import Engine, select

from ntpmon.db import bulk
from ntpmon.db.common import insert_log_scores, log_score_values
from ntpmon.db.tables import log_scores, monitors, servers


def pymysql_literal(value: object) -> str:
    return escape_item(value, "utf8mb4")


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -7,
        2**62,
        True,
        False,
        0.0,
        -0.0,
        1.5,
        0.1,
        1e-05,
        5e-324,
        1.7976931348623157e308,
        -2.5e-300,
        123456789.125,
        datetime(2026, 11, 26, 12, 0, 0),
        datetime(2026, 11, 26, 12, 0, 0, 123456),
        datetime(2026, 11, 26, 12, 0, 0, 1),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "plain",
        "it's a 'quote' and \\ backslash",
        '{"a": "100%", "b": "%s"}',
        "nul\x00 byte\n\r\x1a",
        "non-BMP \U0001f600",
        Decimal("1.25"),
    ],
)
def test_values_render_as_pymysql_renders_them(value: object) -> None:
    assert bulk.renderer(pymysql_literal)(value) == pymysql_literal(value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_floats_mysql_cannot_store_are_refused(value: float) -> None:
    with pytest.raises(bulk.UnrenderableValueError, match="can not be used with MySQL"):
        bulk.renderer(pymysql_literal)(value)


@pytest.mark.parametrize(("rows", "statements"), [(0, 0), (1, 1), (3000, 1), (40_000, 5)])
def test_statements_stay_under_the_size_limit(rows: int, statements: int) -> None:
    head = "INSERT INTO t (a, b) VALUES "
    data = [{"a": i, "b": "x" * 100} for i in range(rows)]
    out = bulk.rendered_statements(head, ["a", "b"], data, bulk.renderer(pymysql_literal))
    assert len(out) == statements
    assert all(len(s) <= bulk.MAX_STATEMENT_BYTES and s.startswith(head) for s in out)
    assert sum(s.count("),(") + 1 for s in out) == rows


TRICKY = [
    "it's a 'quote' and \\ backslash",
    '{"a": "100%", "b": "%s", "c": "%(x)s"}',
    "non-BMP \U0001f600 and ünïcödé",
    None,
]


@pytest.mark.db
def test_rows_read_back_exactly(db: Engine) -> None:
    now = datetime(2026, 11, 26, 12, 0, 0)
    with db.begin() as conn:
        conn.execute(
            monitors.insert().values(
                id=10, type="monitor", hostname="m", location="", tls_name="m",
                status="active", config="", client_version="", created_on=now,
            )
        )  # fmt: skip
        conn.execute(
            servers.insert().values(id=3001, ip="192.0.2.1", ip_version="v4", created_on=now)
        )
        rows = [
            log_score_values(
                server_id=3001,
                monitor_id=10 if i % 3 else None,
                ts=now - timedelta(seconds=i),
                score=[0.1, -0.0, 5e-324, 19.999999999999996][i % 4],
                step=1.0,
                offset=None if i % 2 else i * 1e-9,
                rtt=None if i % 5 == 0 else i * 1000,
                attributes=TRICKY[i % len(TRICKY)],
            )
            for i in range(2500)
        ]
        assert insert_log_scores(conn, rows) == 2500
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
        for r in rows
    ]  # fmt: skip
    assert [tuple(s) for s in stored] == expected


def test_a_refused_value_renders_no_statement_at_all() -> None:
    """Every statement is rendered before the first is sent: a bad last row sends nothing."""
    data = [{"a": float(i)} for i in range(20_000)] + [{"a": float("nan")}]
    with pytest.raises(bulk.UnrenderableValueError):
        bulk.rendered_statements("INSERT INTO t (a) VALUES ", ["a"], data, bulk.renderer(str))
