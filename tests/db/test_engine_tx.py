"""Engine set-up and the transaction retry helper against real databases."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ntpmon.db.config import DatabaseSettings, parse_dsn, resolve_settings
from ntpmon.db.engine import DatabaseUnavailableError, create_db_engine, wait_for_database
from ntpmon.db.tables import system_settings
from ntpmon.db.tx import RetryPolicy, is_connection_error, is_deadlock, run_in_tx
from ntpmon.testing.databases import configured_test_dsn, temporary_sqlite_database

FAST = RetryPolicy(initial=0.05, factor=1.5, max_interval=0.2, max_elapsed=5.0, jitter=0)


def test_retry_policy_delays() -> None:
    scorer = RetryPolicy()
    delays = scorer.delays()
    assert delays[:4] == [5.0, 7.5, 11.25, 16.875]
    assert max(delays) == 60.0
    assert sum(delays) <= 600.0


def _seed_two_settings(conn: Connection) -> None:
    from datetime import datetime

    for key in ("a", "b"):
        conn.execute(
            system_settings.insert().values(key=key, value="0", created_on=datetime(2026, 1, 1))
        )


def test_deadlock_is_retried_as_a_whole(db: Engine) -> None:
    """Two transactions lock a and b in opposite order; the victim is re-run and both commit."""
    with db.begin() as conn:
        _seed_two_settings(conn)
    barrier = threading.Barrier(2, timeout=10)
    attempts: list[str] = []

    def work(first: str, second: str) -> None:
        def unit(conn: Connection) -> None:
            attempts.append(first)
            conn.execute(
                update(system_settings)
                .where(system_settings.c.key == first)
                .values(value=system_settings.c.value + "1")
            )
            if attempts.count(first) == 1:
                barrier.wait()
            conn.execute(
                update(system_settings)
                .where(system_settings.c.key == second)
                .values(value=system_settings.c.value + "1")
            )

        run_in_tx(db, unit, policy=FAST)

    threads = [threading.Thread(target=work, args=pair) for pair in (("a", "b"), ("b", "a"))]
    if db.dialect.name == "sqlite":
        # SQLite serialises writers (BEGIN IMMEDIATE): the second waits, no deadlock is possible.
        barrier = threading.Barrier(1)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with db.connect() as conn:
        values = dict(conn.execute(select(system_settings.c.key, system_settings.c.value)).all())
    # every committed attempt added exactly one "1" to each row: nothing was applied twice
    assert values == {"a": "011", "b": "011"}
    if db.dialect.name != "sqlite":
        assert len(attempts) == 3  # the deadlock victim ran twice


def test_other_errors_fail_at_once(db: Engine) -> None:
    with db.begin() as conn:
        _seed_two_settings(conn)
    calls = []

    def duplicate(conn: Connection) -> None:
        calls.append(1)
        _seed_two_settings(conn)

    with pytest.raises(IntegrityError):
        run_in_tx(db, duplicate, policy=FAST)
    assert calls == [1]


def test_sqlite_busy_is_retryable(tmp_path: Path) -> None:
    with temporary_sqlite_database(tmp_path) as engine:
        impatient = create_engine(
            engine.url, connect_args={"timeout": 0.05}, isolation_level="AUTOCOMMIT"
        )
        holder = engine.connect()
        holder.begin()  # BEGIN IMMEDIATE: holds the write lock
        try:
            with pytest.raises(OperationalError) as err, impatient.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            assert is_deadlock(err.value)
        finally:
            holder.rollback()
            holder.close()
            impatient.dispose()


@pytest.fixture
def mysql_user() -> Iterator[tuple[str, str]]:
    """A throw-away MariaDB account with a password, for credential-rotation tests."""
    url, _ = parse_dsn(configured_test_dsn())
    admin = create_engine(url.set(database=None), isolation_level="AUTOCOMMIT")
    user, password = f"ntpmon_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with admin.connect() as conn:
        conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
        conn.execute(text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'"))
    try:
        yield user, password
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'localhost'"))
        admin.dispose()


def test_credentials_reread_for_each_connection(
    tmp_path: Path, mysql_user: tuple[str, str]
) -> None:
    user, password = mysql_user
    url, _ = parse_dsn(configured_test_dsn())
    cfg = tmp_path / "database.yaml"
    cfg.write_text(f"mysql:\n  user: {user}\n  pass: wrong\n")
    dsn = url.set(database=None).render_as_string(hide_password=False)
    settings = resolve_settings(dsn, environ={}, config_files=[cfg])
    engine = create_db_engine(settings)
    try:
        with pytest.raises(OperationalError), engine.connect():
            pass
        cfg.write_text(f"mysql:\n  user: {user}\n  pass: {password}\n")  # rotated by Vault
        with engine.connect() as conn:
            assert conn.execute(text("SELECT CURRENT_USER()")).scalar().startswith(user)
    finally:
        engine.dispose()


def test_unreachable_database_names_host_not_password() -> None:
    settings = DatabaseSettings(url=parse_dsn("mysql+pymysql://u:hunter2@127.0.0.1:1/db")[0])
    engine = create_db_engine(settings)
    with pytest.raises(DatabaseUnavailableError) as err:
        wait_for_database(engine, settings, timeout=0.3, sleep=lambda _: None)
    message = str(err.value)
    assert "127.0.0.1:1" in message and "hunter2" not in message
    assert message.startswith("cannot connect to mysql at 127.0.0.1:1 (database db)")
    assert is_connection_error(err.value.__context__)  # type: ignore[arg-type]
