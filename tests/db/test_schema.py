"""The owned schema: schema.sql loads into MariaDB and equals what the metadata creates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, text

from ntpmon.db.config import parse_dsn
from ntpmon.db.ddl import SchemaMismatchError, check_schema, create_schema
from ntpmon.db.tables import metadata
from ntpmon.testing.databases import configured_test_dsn, temporary_mysql_database


@pytest.fixture
def empty_mysql_db() -> Iterator[Engine]:
    url, _ = parse_dsn(configured_test_dsn())
    name = f"ntpmon_schema_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database=None), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    engine = create_engine(url.set(database=name), isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE `{name}`"))
        admin.dispose()


def _show_create(engine: Engine) -> dict[str, list[str]]:
    """Each table's DDL as MariaDB prints it, lines sorted (index order is not significant)."""
    with engine.connect() as conn:
        return {
            t.name: sorted(
                line.strip().rstrip(",")
                for line in conn.execute(text(f"SHOW CREATE TABLE `{t.name}`"))
                .one()[1]
                .splitlines()
            )
            for t in metadata.sorted_tables
        }


def test_schema_sql_loads_and_matches_metadata(empty_mysql_db: Engine, repo_root: Path) -> None:
    raw = empty_mysql_db.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in (repo_root / "schema.sql").read_text().split(";\n"):
            body = "\n".join(
                line for line in statement.splitlines() if not line.startswith("--")
            ).strip()
            if body:
                cursor.execute(body)
        raw.commit()
    finally:
        raw.close()
    loaded = _show_create(empty_mysql_db)
    with temporary_mysql_database("ntpmon_schema_ref") as reference:
        assert loaded == _show_create(reference)
    assert "`offset` double DEFAULT NULL" in loaded["log_scores"]
    assert "UNIQUE KEY `server_id` (`server_id`,`monitor_id`)" in loaded["server_scores"]
    assert (
        "`modified_on` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp()"
    ) in loaded["server_scores"]
    assert "`last_seen` datetime(6) DEFAULT NULL" in loaded["monitors"]
    assert "`rtt` mediumint(9) DEFAULT NULL" in loaded["log_scores"]
    # loaded by hand, the schema has no revision recorded: `db upgrade` records it, changing
    # nothing else
    with pytest.raises(SchemaMismatchError, match="upgrade due"):
        check_schema(empty_mysql_db)
    create_schema(empty_mysql_db)
    check_schema(empty_mysql_db)
    assert _show_create(empty_mysql_db) == loaded


def test_create_schema_is_idempotent(db: Engine) -> None:
    create_schema(db)
    create_schema(db)
    check_schema(db)


def test_check_schema_names_missing_table(db: Engine, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'partial.sqlite'}")
    metadata.tables["accounts"].create(engine)
    with pytest.raises(SchemaMismatchError, match="table monitors is missing") as err:
        check_schema(engine)
    assert "monitor-api db init" in str(err.value)


def test_check_schema_names_missing_column(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE servers DROP COLUMN flags"))
    with pytest.raises(SchemaMismatchError, match="table servers lacks columns flags"):
        check_schema(engine)


def test_sqlite_session_settings(db: Engine) -> None:
    if db.dialect.name != "sqlite":
        with db.connect() as conn:
            assert conn.execute(text("SELECT @@session.time_zone")).scalar() == "+00:00"
            mode = conn.execute(text("SELECT @@session.sql_mode")).scalar()
            assert "ONLY_FULL_GROUP_BY" in mode and "STRICT_TRANS_TABLES" in mode
        return
    with db.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_log_scores_ids_never_reused(db: Engine) -> None:
    """The scorer's cursor depends on ids that never go backwards, even after deletes."""
    from datetime import UTC, datetime

    from ntpmon.db import admin
    from ntpmon.db.common import insert_log_score
    from ntpmon.db.tables import log_scores

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        server = admin.create_server(conn, ip="192.0.2.1", now=now)
        first = insert_log_score(conn, server_id=server, monitor_id=None, ts=now, score=1, step=1)
        conn.execute(sa.delete(log_scores).where(log_scores.c.id == first))
        second = insert_log_score(conn, server_id=server, monitor_id=None, ts=now, score=1, step=1)
    assert second > first
