"""The API's pool pings only connections that sat idle, and a dead connection never reaches
a caller as a failed RPC: the idle ping replaces it, and without a ping the transaction retry
runs on a fresh connection. MySQL/MariaDB only (SQLite has no server to lose)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, Engine, text

from ntpmon.db.config import resolve_settings
from ntpmon.db.engine import create_db_engine
from ntpmon.db.tx import RetryPolicy, run_in_tx
from ntpmon.testing.databases import temporary_mysql_database

pytestmark = pytest.mark.db

RETRY = RetryPolicy(initial=0.01, factor=2.0, max_interval=0.05, max_elapsed=0.2, jitter=0)


@pytest.fixture
def database() -> Iterator[Engine]:
    with temporary_mysql_database("ntpmon_ping") as db:
        yield db


@contextmanager
def one_connection_engine(database: Engine, idle: float) -> Iterator[Engine]:
    engine = create_db_engine(
        resolve_settings(database.url.render_as_string(hide_password=False)),
        pool_size=1,
        max_overflow=0,
        ping_after_idle=idle,
    )
    try:
        yield engine
    finally:
        engine.dispose()


def _thread_id(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())


def _pings(engine: Engine) -> list[int]:
    """Record every ping of the engine's dialect (counted, then passed on)."""
    seen: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        seen.append(1)
        return original(dbapi_conn)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize(
    ("idle", "wait", "pinged"),
    [
        (3600.0, 0.0, False),  # reused at once: no round trip for a ping
        (0.05, 0.2, True),  # sat in the pool longer than the threshold
    ],
)
def test_ping_only_after_idle(database, idle, wait, pinged):
    with one_connection_engine(database, idle) as engine:
        pings = _pings(engine)
        with engine.connect() as conn:  # a new connection is never pinged
            first = _thread_id(conn)
        time.sleep(wait)
        with engine.connect() as conn:
            assert _thread_id(conn) == first
        assert pings == ([1] if pinged else [])


@pytest.mark.parametrize("idle", [0.0, 3600.0])
def test_killed_connection_is_replaced_before_the_work_commits(database, idle):
    """idle 0: the checkout ping finds it dead; 3600: the statement fails and is retried."""
    with one_connection_engine(database, idle) as engine:
        with engine.connect() as conn:
            victim = _thread_id(conn)
        with database.connect() as admin:
            admin.execute(text(f"KILL CONNECTION {victim}"))
        retries: list[int] = []
        got = run_in_tx(
            engine,
            _thread_id,
            policy=RETRY,
            sleep=lambda _: None,
            on_retry=lambda _exc, attempt: retries.append(attempt),
        )
        assert got != victim
        assert retries == ([] if idle == 0.0 else [1])
