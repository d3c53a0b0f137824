"""Throw-away databases for tests and benchmarks: uniquely named, created and dropped here.

``TEST_DATABASE_DSN`` names the MySQL/MariaDB server (default: the local MariaDB as root);
each call creates its own database on it, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, text

from ntpmon.db.config import DatabaseSettings, parse_dsn
from ntpmon.db.ddl import create_schema
from ntpmon.db.engine import create_db_engine
from ntpmon.db.tables import metadata

DEFAULT_TEST_DSN = "mysql+pymysql://root@127.0.0.1:3306/"


def configured_test_dsn() -> str:
    return os.environ.get("TEST_DATABASE_DSN") or DEFAULT_TEST_DSN


@contextmanager
def temporary_mysql_database(
    prefix: str = "ntpmon_test", server_dsn: str | None = None, *, schema: bool = True
) -> Iterator[Engine]:
    """A fresh database with ntpmon's schema (or, without ``schema``, none) on the test
    MySQL/MariaDB server."""
    url, connect_args = parse_dsn(server_dsn or configured_test_dsn())
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        url.set(database=None), isolation_level="AUTOCOMMIT", connect_args=connect_args
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb3"))
        engine = create_db_engine(
            DatabaseSettings(url=url.set(database=name), connect_args=connect_args)
        )
        try:
            if schema:
                create_schema(engine)
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


@contextmanager
def temporary_sqlite_database(directory: Path, *, schema: bool = True) -> Iterator[Engine]:
    """A fresh SQLite file (WAL, foreign keys on) with ntpmon's schema (or none)."""
    path = directory / f"ntpmon-{uuid.uuid4().hex[:8]}.sqlite"
    engine = create_db_engine(DatabaseSettings(url=parse_dsn(f"sqlite:///{path}")[0]))
    try:
        if schema:
            create_schema(engine)
        yield engine
    finally:
        engine.dispose()


def empty_tables(engine: Engine) -> None:
    """Delete every row, children first, so each test starts from an empty schema."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
