"""A connection goes back to the pool clean: rolled back unless its transaction committed.

monitor-api's transactions skip the pool's redundant ROLLBACK after a commit (one round trip
each); a connection returned with a transaction still open must still be rolled back, or the
next user of the connection would commit someone else's half-done work. The custom reset
exists only for MySQL/MariaDB engines (SQLite keeps SQLAlchemy's default), so this runs there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, insert, select

from ntpmon.common.clock import db_seconds
from ntpmon.db.config import resolve_settings
from ntpmon.db.engine import create_db_engine
from ntpmon.db.tables import accounts
from ntpmon.db.tx import run_in_tx
from ntpmon.testing.databases import temporary_mysql_database

pytestmark = pytest.mark.db


def _accounts(conn) -> int:  # type: ignore[no-untyped-def]
    return conn.execute(select(func.count()).select_from(accounts)).scalar_one()


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A MariaDB engine with exactly one pooled connection, so every checkout reuses it."""
    with temporary_mysql_database("ntpmon_pool_reset") as db:
        one = create_db_engine(
            resolve_settings(db.url.render_as_string(hide_password=False)),
            pool_size=1,
            max_overflow=0,
        )
        try:
            yield one
        finally:
            one.dispose()


def test_open_transaction_is_rolled_back_when_returned_and_commits_stay(engine, clock):
    now = db_seconds(clock.now())
    # A DBAPI connection handed back with its transaction still open (SQLAlchemy's
    # Connection rolls back itself; the pool's reset is what covers everything else).
    stmt = insert(accounts).values(name="uncommitted", created_on=now)
    compiled = stmt.compile(dialect=engine.dialect)
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute(str(compiled), compiled.params)
    cursor.close()
    raw.close()
    # the same pooled connection commits a transaction of its own...
    run_in_tx(
        engine, lambda c: c.execute(insert(accounts).values(name="committed", created_on=now))
    )
    # ...and after a commit, the next transaction starts from a clean connection too
    assert run_in_tx(engine, _accounts) == 1
    with engine.connect() as conn:
        names = conn.execute(select(accounts.c.name)).scalars().all()
    assert names == ["committed"]
