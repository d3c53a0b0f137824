"""Engine set-up: pool, session settings, SQLite pragmas, start-up connect with a bounded retry."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, PoolResetState, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from ntpmon.common.errors import NtpmonError
from ntpmon.db.config import DatabaseConfigError, DatabaseSettings, read_config_file

log = logging.getLogger(__name__)

COMMITTED = "ntpmon.committed"  # Connection.info flag: the transaction just committed
CHECKED_IN_AT = "ntpmon.checked_in_at"  # connection record info: monotonic time of the checkin

SESSION_INIT = (
    "SET time_zone='+00:00', sql_mode='ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,"
    "NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION',"
    " group_concat_max_len=1048576"
)
"""Per-connection settings. ``group_concat_max_len`` is MariaDB's default and lifts MySQL 8's
1 KB: the scorer reads row keys packed per server (readers also check counts, see
``ntpmon.db.scorer``)."""


DRIVER_TIMEOUTS: dict[str, float] = {
    "connect_timeout": 5,
    "read_timeout": 30,
    "write_timeout": 30,
}
"""PyMySQL's socket timeouts, in seconds, unless the DSN sets them (``?connect_timeout=`` /
``read_timeout`` / ``write_timeout`` in a URL; ``timeout``, ``readTimeout``, ``writeTimeout`` in
a Go DSN). Without them a partitioned database (packets dropped, no RST) blocks a handler
thread until the kernel gives up, minutes later, and every RPC hangs until the client's
deadline; with them the call fails as a connection error and is answered UNAVAILABLE. The read
timeout also bounds a single statement's wait for its result, lock waits included: one that
waits longer is treated as a lost connection (the connection is dropped, the work retried)."""


def driver_timeouts(settings: DatabaseSettings) -> dict[str, float]:
    """:data:`DRIVER_TIMEOUTS` with what the DSN says instead.

    The URL's query must win, but SQLAlchemy lets ``connect_args`` override the query, so a
    default is only passed for a timeout the URL does not set.
    """
    given = {**settings.url.query, **settings.connect_args}
    return {key: value for key, value in DRIVER_TIMEOUTS.items() if key not in given}


class DatabaseUnavailableError(NtpmonError):
    """The database did not answer within the start-up window."""


def create_db_engine(
    settings: DatabaseSettings,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    ping_after_idle: float | None = None,
) -> Engine:
    """An engine configured as the spec prescribes for the dialect in ``settings``.

    ``ping_after_idle`` (seconds) replaces the ping at every checkout with a ping of the
    connections that sat in the pool at least that long (see :func:`_ping_after_idle`).
    """
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    connect_args = {
        "charset": "utf8mb4",
        "init_command": SESSION_INIT,
        **driver_timeouts(settings),
        **settings.connect_args,
    }
    engine = create_engine(
        settings.url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=180,
        pool_pre_ping=ping_after_idle is None,
        pool_reset_on_return=None,  # see _rollback_unless_committed
        connect_args=connect_args,
    )
    event.listen(engine, "reset", _rollback_unless_committed)
    if ping_after_idle is not None:
        _ping_after_idle(engine, ping_after_idle)
    if settings.config_file is not None:
        _reload_credentials_per_connection(engine, settings.config_file)
    return engine


def mark_committed(conn: Connection) -> None:
    """Tell the pool that ``conn``'s last transaction committed and nothing ran since.

    Call it right before the connection goes back to the pool (see :func:`run_in_tx`).
    """
    conn.info[COMMITTED] = True


def _rollback_unless_committed(dbapi_conn: Any, record: Any, state: PoolResetState) -> None:
    """The pool's reset on return: a ROLLBACK, unless the transaction just committed.

    SQLAlchemy's default rolls back every returned connection, which after a commit is a
    no-op that still costs a round trip per transaction. The flag of :func:`mark_committed`
    is consumed here, so it can never outlive the checkout that set it.
    """
    committed = record.info.pop(COMMITTED, False)
    if not (committed or state.transaction_was_reset):
        dbapi_conn.rollback()


def _ping_after_idle(engine: Engine, idle: float) -> None:
    """Ping a connection at checkout only when it was idle in the pool for ``idle`` seconds.

    ``pool_pre_ping`` costs a round trip per transaction, which for a busy server (a few
    statements per RPC) is a fifth of its database traffic and CPU. What it guards against —
    a connection that the server dropped, timed out or lost in a restart — happens to
    connections that sat unused; one used a moment ago is alive, and should it still break, the
    statement fails as a connection error, SQLAlchemy invalidates the pool and the caller's
    transaction retry (:func:`ntpmon.db.tx.run_in_tx`) runs on a fresh connection. A failed ping
    makes the pool replace the connection before it is handed out, as ``pool_pre_ping`` does.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(CHECKED_IN_AT, None)
        if since is None or time.monotonic() - since < idle:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"ping after {idle} s idle failed: {exc}") from exc


def _reload_credentials_per_connection(engine: Engine, path: Path) -> None:
    @event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        try:
            overrides = read_config_file(path)
        except DatabaseConfigError as exc:
            log.warning("keeping previous credentials", extra={"reason": str(exc)})
            return
        if overrides.user:
            cparams["user"] = overrides.user
        if overrides.password:
            cparams["password"] = overrides.password
        if overrides.dbname:
            cparams["database"] = overrides.dbname


def _sqlite_engine(settings: DatabaseSettings) -> Engine:
    database = settings.url.database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # One writer at a time: take the write lock up front instead of failing on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def wait_for_database(
    engine: Engine,
    settings: DatabaseSettings,
    *,
    timeout: float = 45.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Connect once, retrying with backoff for ``timeout`` seconds (upstream exits at once).

    A deliberate deviation: CI and compose start the database alongside the services.
    """
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except (OperationalError, DBAPIError) as exc:
            if time.monotonic() + delay > deadline:
                reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                raise DatabaseUnavailableError(
                    f"cannot connect to {settings.describe()}: {reason}"
                ) from None
            sleep(delay)
            delay = min(delay * 2, 5.0)


def connect_database(
    dsn: str | None = None,
    *,
    default_sqlite: Path | None = None,
    wait: float = 45.0,
    pool_size: int = 5,
    max_overflow: int = 5,
    ping_after_idle: float | None = None,
) -> Engine:
    """Resolve the settings and connect (waiting up to ``wait`` seconds), schema unchecked."""
    from ntpmon.db.config import resolve_settings

    settings = resolve_settings(dsn, default_sqlite=default_sqlite)
    engine = create_db_engine(
        settings, pool_size=pool_size, max_overflow=max_overflow, ping_after_idle=ping_after_idle
    )
    wait_for_database(engine, settings, timeout=wait)
    return engine


def open_database(
    dsn: str | None = None,
    *,
    default_sqlite: Path | None = None,
    create: bool = False,
    wait: float = 45.0,
    pool_size: int = 5,
    max_overflow: int = 5,
    ping_after_idle: float | None = None,
) -> Engine:
    """Resolve, connect and check the database a command needs.

    ``create`` makes the tables of a database that has none (the embedded SQLite default).
    A database that lacks ntpmon's tables, or whose schema is behind, is refused with one clear
    line: only the ``db`` commands change an existing schema. A server with many handler
    threads sizes the pool to match: an overflow connection is closed when returned to a full
    pool, so an undersized pool reconnects (TCP, auth, session set-up) under load.
    """
    from ntpmon.db.ddl import check_schema
    from ntpmon.db.migrate import create_new_schema

    engine = connect_database(
        dsn,
        default_sqlite=default_sqlite,
        wait=wait,
        pool_size=pool_size,
        max_overflow=max_overflow,
        ping_after_idle=ping_after_idle,
    )
    if create:
        create_new_schema(engine)
    check_schema(engine)
    return engine
