"""Hot statements as driver SQL (``ntpmon.db.driversql``): the rendering, the same rows and
row counts as the Core statement they come from, and the same errors.

On MariaDB the driver path runs; on SQLite the Core fallback. The equivalence tests run each
statement both ways on the same data, so on MariaDB they compare the pre-rendered text with
SQLAlchemy's own execution of the statement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, bindparam, select, text, update
from sqlalchemy.exc import CompileError, DBAPIError, IntegrityError

from ntpmon.common.clock import FixedClock, db_micros, db_seconds
from ntpmon.db import admin
from ntpmon.db import api as q
from ntpmon.db.common import log_score_values
from ntpmon.db.driversql import DriverSql, HotStatement, RowsInsert, _bind, _expanded
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import log_scores, metadata, monitors, server_scores, servers
from ntpmon.db.tx import RetryPolicy, run_in_tx
from ntpmon.testing.databases import temporary_mysql_database

# -- rendering (no database) ------------------------------------------------------------------


def _render(stmt: Any) -> DriverSql:
    return DriverSql.render(stmt)


RENDERING = [
    pytest.param(
        update(monitors).where(monitors.c.id == bindparam("b_id")).values(last_seen=bindparam("t")),
        {"b_id": 7, "t": "T"},
        "UPDATE monitors SET last_seen=%s WHERE monitors.id = %s",
        ("T", 7),
        id="named parameters in placeholder order",
    ),
    pytest.param(
        select(monitors.c.id).where(
            monitors.c.tls_name == bindparam("n"), monitors.c.is_current == 1
        ),
        {"n": "a"},
        "SELECT monitors.id \nFROM monitors \n"
        "WHERE monitors.tls_name = %s AND monitors.is_current = %s",
        ("a", 1),
        id="a constant of the statement is bound with it",
    ),
    pytest.param(
        select(servers.c.id).where(
            servers.c.ip.in_(bindparam("ips", expanding=True)), servers.c.id > bindparam("min")
        ),
        {"ips": ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "min": 0},
        "SELECT servers.id \nFROM servers \nWHERE servers.ip IN (%s, %s, %s) AND servers.id > %s",
        ("192.0.2.1", "192.0.2.2", "192.0.2.3", 0),
        id="an IN list is written out for its size",
    ),
    pytest.param(
        select(monitors.c.id).where(monitors.c.status.in_(["active", "testing"])),
        {},
        "SELECT monitors.id \nFROM monitors \nWHERE monitors.status IN (%s, %s)",
        ("active", "testing"),
        id="a constant IN list",
    ),
    pytest.param(
        update(server_scores)
        .where(server_scores.c.queue_ts < bindparam("t"))
        .values(queue_ts=bindparam("t")),
        {"t": "T"},
        "UPDATE server_scores SET queue_ts=%s, modified_on=CURRENT_TIMESTAMP "
        "WHERE server_scores.queue_ts < %s",
        ("T", "T"),
        id="a repeated name fills each of its placeholders (and onupdate stays)",
    ),
]


@pytest.mark.parametrize(("stmt", "params", "sql", "args"), RENDERING)
def test_rendering(stmt, params, sql, args):
    rendered = _render(stmt)
    values = rendered.values(params)
    if rendered.expanding:
        sizes = tuple(len(values[name]) for name in rendered.expanding)
        rendered = _expanded(rendered, sizes)
    assert rendered.text == sql
    assert rendered.args(values) == args


def test_rows_insert_text_repeats_the_value_group():
    insert = RowsInsert(log_scores, ("server_id", "monitor_id", "ts", "score", "step"))
    assert insert.columns == ("monitor_id", "server_id", "ts", "score", "step")  # table order
    with pytest.raises(CompileError, match="no_such_column"):
        RowsInsert(log_scores, ("server_id", "no_such_column"))


# -- the same results as Core, on both dialects ----------------------------------------------


NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def _scenario(db: Engine) -> dict[str, Any]:
    """A v4 and a v6 monitor, four servers (one deleted, one recently scored), assignments
    with every queue state, and a second monitor sharing the servers."""
    clock = FixedClock(NOW)
    now = clock.now()
    with db.begin() as conn:
        account = admin.create_account(conn, name="a", now=now, id_token="tok")
        mon = admin.create_monitor(
            conn,
            tls_name="m1.devel.mon.ntppool.dev",
            ip="192.0.2.10",
            now=now,
            account_id=account,
            status=MonitorStatus.ACTIVE,
        )
        admin.create_monitor(
            conn, tls_name="m1.devel.mon.ntppool.dev", ip="2001:db8::10", now=now,
            status=MonitorStatus.TESTING,
        )  # fmt: skip
        other = admin.create_monitor(
            conn, tls_name="m2.devel.mon.ntppool.dev", ip="192.0.2.11", now=now,
            status=MonitorStatus.ACTIVE,
        )  # fmt: skip
        ids = [admin.create_server(conn, ip=f"198.51.100.{i}", now=now) for i in range(1, 6)]
        admin.assign_monitor_to_servers(conn, monitor_id=mon, now=now)
        admin.assign_monitor_to_servers(conn, monitor_id=other, now=now)
        base = db_seconds(now)
        queue = [None, base - timedelta(minutes=10), base - timedelta(minutes=1), None, None]
        statuses = ["active", "active", "active", "testing", "candidate"]
        for sid, queued, status in zip(ids, queue, statuses, strict=True):
            conn.execute(
                update(server_scores)
                .where(server_scores.c.server_id == sid, server_scores.c.monitor_id == mon)
                .values(queue_ts=queued, status=status, score_raw=float(sid), stratum=2)
            )
        conn.execute(update(servers).where(servers.c.id == ids[3]).values(score_ts=base))
        conn.execute(  # a caller with every column set: µs timestamps, JSON, a version
            update(monitors)
            .where(monitors.c.id == mon)
            .values(
                last_submit=db_micros(now),
                last_seen=db_micros(now),
                client_version="v4.1.5/abc (2026-04-28T10:00:00Z, go1.26)",
                config='{"samples": 3, "base_checks": ["ntp.example"], "x": "ü"}',
            )
        )
        conn.execute(update(servers).where(servers.c.id == ids[4]).values(deletion_on=base.date()))
        score_ids = [
            conn.execute(
                select(server_scores.c.id).where(
                    server_scores.c.server_id == sid, server_scores.c.monitor_id == mon
                )
            ).scalar_one()
            for sid in ids
        ]
    return {"monitor": mon, "servers": ids, "score_ids": score_ids, "now": now}


def _due_params(s: dict[str, Any]) -> dict[str, Any]:
    cutoff = db_seconds(s["now"])
    return {
        "monitor_id": s["monitor"],
        "ip_version": "v4",
        "active_before": cutoff - timedelta(minutes=9),
        "testing_before": cutoff - timedelta(minutes=45),
        "requeue_before": cutoff - timedelta(minutes=120),
        "scored_before": cutoff - timedelta(seconds=60),
        "today": cutoff.date(),
        "limit": 10,
    }


def _score_params(s: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"ids": s["score_ids"][:2]}
    for i, sid in enumerate(s["score_ids"][:2]):
        params[f"ts_id{i}"] = params[f"raw_id{i}"] = sid
        params[f"ts{i}"] = db_seconds(s["now"])
        params[f"raw{i}"] = 1.5 + i
    params["stratum_id0"], params["stratum0"] = s["score_ids"][1], 3
    return params


Case = tuple[HotStatement, Callable[[dict[str, Any]], dict[str, Any]]]

READS: dict[str, Case] = {
    "identity by IP": (
        q._IDENTITY_BY_IP,
        lambda s: {"tls_name": "m1.devel.mon.ntppool.dev", "mon_id": "2001:db8::10"},
    ),
    "identity with every column set": (
        q._IDENTITY_BY_IP,
        lambda s: {"tls_name": "m1.devel.mon.ntppool.dev", "mon_id": "192.0.2.10"},
    ),
    "identity, any IP (lowest id)": (
        q._IDENTITY_ANY_IP,
        lambda s: {"tls_name": "m1.devel.mon.ntppool.dev"},
    ),
    "identity of nobody": (q._IDENTITY_ANY_IP, lambda s: {"tls_name": "nobody"}),
    "due servers": (q._DUE_SERVERS, _due_params),
    "due servers, limit 1": (q._DUE_SERVERS, lambda s: {**_due_params(s), "limit": 1}),
    "assignments by IP (one unknown)": (
        q._ASSIGNMENTS,
        lambda s: {
            "monitor_id": s["monitor"],
            "ips": ["198.51.100.1", "198.51.100.3", "203.0.113.9"],
        },
    ),
}

WRITES: dict[str, Case] = {
    "last_seen": (
        q._MONITOR_SEEN,
        lambda s: {"b_id": s["monitor"], "b_last_seen": db_micros(s["now"])},
    ),
    "queue stamp (guarded)": (
        q._QUEUE_STAMP,
        lambda s: {
            "b_monitor_id": s["monitor"],
            "b_server_ids": s["servers"][:3],
            "b_queue_ts": db_seconds(s["now"]) - timedelta(minutes=5),
        },
    ),
    "claim a batch": (
        q._CLAIM_BATCH,
        lambda s: {
            "b_id": s["monitor"],
            "b_last_submit": db_micros(s["now"] + timedelta(seconds=1)),
            "b_last_seen": db_micros(s["now"]),
        },
    ),
    "score CASE update with a stratum": (q._score_update(2, 1), _score_params),
}


def _core_rows(conn: Connection, hot: HotStatement, params: dict[str, Any]) -> list[tuple]:
    return [tuple(r) for r in conn.execute(hot.statement, params)]


def _tables(conn: Connection) -> dict[str, list[tuple]]:
    return {
        t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr)
        for t in metadata.sorted_tables
    }


@pytest.mark.db
@pytest.mark.parametrize("name", list(READS))
def test_reads_match_core(db, name):
    hot, params_of = READS[name]
    params = params_of(_scenario(db))
    with db.connect() as conn:
        assert [tuple(r) for r in hot.rows(conn, params)] == _core_rows(conn, hot, params)


@pytest.mark.db
@pytest.mark.parametrize("name", list(WRITES))
def test_writes_match_core(db, name):
    """Each way in its own rolled-back transaction: same row count, same rows afterwards."""
    hot, params_of = WRITES[name]
    params = params_of(_scenario(db))
    outcomes = []
    for run in (hot.rowcount, lambda c, p: c.execute(hot.statement, p).rowcount):
        with db.connect() as conn, conn.begin() as tx:
            count = run(conn, params)
            rows = _tables(conn)
            tx.rollback()
        outcomes.append((count, rows))
    assert outcomes[0][0] > 0
    assert outcomes[0] == outcomes[1]


@pytest.mark.db
def test_rows_insert_matches_core_executemany(db):
    s = _scenario(db)
    rows = [
        log_score_values(
            server_id=sid, monitor_id=s["monitor"], ts=s["now"], score=0.5 * i, step=1.0,
            offset=None if i else 0.001, rtt=10_000 * i, attributes='{"leap":1}' if i else None,
        )
        for i, sid in enumerate(s["servers"][:3])
    ]  # fmt: skip
    insert = RowsInsert(log_scores, tuple(rows[0]))
    outcomes = []
    for run in (insert.run, lambda c, r: c.execute(insert.statement, r).rowcount):
        with db.connect() as conn, conn.begin() as tx:
            count = run(conn, rows)
            stored = [r[1:] for r in conn.execute(select(log_scores).order_by(log_scores.c.id))]
            tx.rollback()
        outcomes.append((count, stored))
    assert outcomes[0][0] == 3
    assert outcomes[0] == outcomes[1]
    with db.connect() as conn:
        assert insert.run(conn, []) == 0


# -- errors as SQLAlchemy raises them ---------------------------------------------------------


@pytest.mark.db
def test_driver_error_is_raised_as_core_would(db):
    s = _scenario(db)
    row = log_score_values(
        server_id=max(s["servers"]) + 100,
        monitor_id=s["monitor"],
        ts=NOW,
        score=0.0,
        step=0.0,
        offset=None,
        rtt=None,
        attributes=None,
    )  # fmt: skip  (no such server: the foreign key refuses it)
    insert = RowsInsert(log_scores, tuple(row))
    errors = []
    for run in (insert.run, lambda c, r: c.execute(insert.statement, r)):
        with db.connect() as conn, conn.begin(), pytest.raises(DBAPIError) as caught:
            run(conn, [row])
        errors.append(caught.value)
    hot, core = errors
    assert type(hot) is type(core) is IntegrityError
    assert type(hot.orig) is type(core.orig)
    assert hot.orig.args == core.orig.args
    assert not hot.connection_invalidated


@pytest.mark.db
def test_broken_connection_is_invalidated_and_the_transaction_retried():
    """MariaDB only: SQLite has no server connection to lose."""
    with temporary_mysql_database("ntpmon_driversql") as db:
        _killed_on_first_attempt(db)


def _killed_on_first_attempt(db: Engine) -> None:
    _scenario(db)
    victims: list[int] = []

    def unit(conn: Connection) -> Any:
        if not victims:  # first attempt: the server drops this connection
            victims.append(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
            with db.connect() as admin_conn:
                admin_conn.execute(text(f"KILL CONNECTION {victims[0]}"))
        return q._IDENTITY_ANY_IP.rows(conn, {"tls_name": "m1.devel.mon.ntppool.dev"})

    attempts: list[BaseException] = []
    rows = run_in_tx(
        db,
        unit,
        policy=RetryPolicy(initial=0.01, factor=1.0, max_interval=0.01, max_elapsed=0.1),
        sleep=lambda _: None,
        on_retry=lambda exc, _n: attempts.append(exc),
    )
    assert len(rows) == 1
    assert len(attempts) == 1
    assert isinstance(attempts[0], DBAPIError) and attempts[0].connection_invalidated


# -- values written into the text exactly as PyMySQL writes them -------------------------------

VALUES = [
    0,
    -7,
    2**63 + 5,
    True,
    1.5,
    -0.0,
    1e-7,
    1e300,
    12.345678901234567,
    None,
    datetime(2026, 11, 26, 12, 0, 0),
    datetime(2026, 11, 26, 12, 0, 0, 123456),
    datetime(2026, 11, 26, 12, 0, 0, 5),
    datetime(999, 1, 2, 3, 4, 5),
    datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC),  # PyMySQL drops the zone
    datetime(2026, 11, 26, 12, 0, 0).date(),
    "198.51.100.1",
    'it\'s \\ a "quote" \n',
    "ünïcødé ✓",
    '{"leap":1,"error":"RATE"}',
    b"\x00\x01'",
]


@pytest.mark.db
def test_values_are_bound_as_pymysql_binds_them():
    with temporary_mysql_database("ntpmon_driversql") as db, db.connect() as conn:
        dbapi_conn = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()
        text = "SELECT " + ", ".join(["%s"] * len(VALUES)) + " -- 100%% done"
        assert _bind(dbapi_conn, text, tuple(VALUES)) == cursor.mogrify(text, tuple(VALUES))
