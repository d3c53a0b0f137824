"""Schema revisions on MariaDB and SQLite: old databases upgrade to exactly what a new one is.

Old databases are rebuilt the way they were made: on MariaDB by loading ``schema.sql`` as it was
before a change (today's file with the change taken out again), on SQLite by creating the tables
from a copy of the metadata with the same change taken out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, Index, MetaData, func, insert, inspect, select, text

from ntpmon.api.cli import app as api_app
from ntpmon.common.cli import run_app
from ntpmon.db.ddl import SchemaMismatchError, create_schema
from ntpmon.db.engine import open_database
from ntpmon.db.migrate import alembic_config, head_revision, run_revisions, schema_revision
from ntpmon.db.migrations.helpers import compare_server_default, include_object
from ntpmon.db.tables import log_scores, metadata, servers
from ntpmon.scorer.cli import app as scorer_app
from ntpmon.testing.databases import temporary_mysql_database, temporary_sqlite_database

pytestmark = pytest.mark.db

HEAD = "0005"
WIDE = "KEY log_scores_server_ts_idx (server_id, ts, monitor_id, step, rtt)"
NARROW = "KEY log_scores_server_ts_idx (server_id, ts)"
QUEUE = ",\n  KEY monitor_queue (monitor_id, queue_ts)"

# an old state: (description, schema.sql text edits, metadata edits)
OLD_STATES = {
    # schema.sql at b009ffe: before server_scores.monitor_queue
    "before-monitor-queue": [(QUEUE, "")],
    # schema.sql at 01223e5 (the baseline): the narrow log_scores index, no monitor_queue
    "baseline": [(QUEUE, ""), (WIDE, NARROW)],
    # today's schema.sql, loaded by an ntpmon that had no revisions yet
    "unversioned-current": [],
}

MakeDb = Callable[[], AbstractContextManager[Engine]]


@pytest.fixture(params=("mariadb", "sqlite"))
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> MakeDb:
    """Makes empty databases (no tables) of the parametrised dialect."""
    if request.param == "mariadb":
        return lambda: temporary_mysql_database("ntpmon_mig", schema=False)
    return lambda: temporary_sqlite_database(tmp_path, schema=False)


@pytest.fixture
def empty_db(make_db: MakeDb) -> Iterator[Engine]:
    with make_db() as engine:
        yield engine


@pytest.fixture
def fresh_db(make_db: MakeDb) -> Iterator[Engine]:
    """A new database as ``db init`` makes it (the reference an upgraded one must equal)."""
    with make_db() as engine:
        create_schema(engine)
        yield engine


def _dsn(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _cli(app: Any, prog: str, engine: Engine, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = run_app(app, prog, ["db", *args, "--database-dsn", _dsn(engine)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _edited(sql: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        assert old in sql, f"schema.sql no longer contains {old!r}: update the old states"
        sql = sql.replace(old, new)
    return sql


def _load_sql(engine: Engine, sql: str) -> None:
    with engine.connect() as conn:
        for chunk in sql.split(";\n"):
            body = "\n".join(ln for ln in chunk.splitlines() if not ln.startswith("--")).strip()
            if body:
                conn.exec_driver_sql(body)
        conn.commit()


def _old_metadata(edits: list[tuple[str, str]]) -> MetaData:
    """A copy of the metadata with the schema.sql edits applied to its indexes."""
    old = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(old)
    for before, after in edits:
        name = "monitor_queue" if before == QUEUE else "log_scores_server_ts_idx"
        table = old.tables["server_scores" if name == "monitor_queue" else "log_scores"]
        table.indexes.remove(next(i for i in table.indexes if i.name == name))
        if after == NARROW:
            Index(name, table.c.server_id, table.c.ts)
    return old


def _make_old(engine: Engine, state: str, repo_root: Path) -> None:
    edits = OLD_STATES[state]
    if engine.dialect.name == "sqlite":
        _old_metadata(edits).create_all(engine)
    else:
        _load_sql(engine, _edited((repo_root / "schema.sql").read_text(), edits))
    with engine.begin() as conn:  # data that must survive the upgrade
        conn.execute(insert(servers).values(id=7, ip="192.0.2.7", created_on=datetime(2026, 1, 1)))
        conn.execute(insert(log_scores).values(server_id=7, ts=datetime(2026, 1, 1), score=5))


def _describe(engine: Engine) -> dict[str, Any]:
    """Everything reflection sees, order-independent; on MariaDB also SHOW CREATE TABLE."""
    inspector = inspect(engine)
    found: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        found[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "fks": sorted(
                (
                    f["name"],
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    str(sorted(f["options"].items())),
                )
                for f in inspector.get_foreign_keys(name)
            ),
        }
        if engine.dialect.name != "sqlite":
            with engine.connect() as conn:
                ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1]
            ddl = re.sub(r" AUTO_INCREMENT=\d+", "", ddl)  # the seeded rows move the counter
            found[name]["ddl"] = sorted(line.strip().rstrip(",") for line in ddl.splitlines())
    return found


def _diff(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would put into a new revision for this database."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_object,
                "compare_type": True,
                "compare_server_default": compare_server_default,
            },
        )
        return compare_metadata(context, metadata)


def test_head_is_the_newest_revision() -> None:
    assert head_revision() == HEAD


def test_db_init_on_an_empty_database_is_at_head(empty_db: Engine, capsys: Any) -> None:
    code, out, err = _cli(api_app, "monitor-api", empty_db, capsys, "init")
    assert code == 0, err
    assert f"upgraded from an empty database to head revision {HEAD}" in out
    with empty_db.connect() as conn:
        state = schema_revision(conn)
    assert (state.current, state.at_head, state.has_tables) == (HEAD, True, True)
    code, out, _ = _cli(api_app, "monitor-api", empty_db, capsys, "check")
    assert code == 0
    assert f"revision {HEAD}, head {HEAD} (up to date)" in out


@pytest.mark.parametrize("state", sorted(OLD_STATES))
def test_old_database_upgrades_to_what_a_new_one_is(
    empty_db: Engine, fresh_db: Engine, state: str, repo_root: Path, capsys: Any
) -> None:
    _make_old(empty_db, state, repo_root)
    if state != "unversioned-current":
        assert _describe(empty_db) != _describe(fresh_db)

    code, _, err = _cli(api_app, "monitor-api", empty_db, capsys, "check")
    assert code == 1
    assert f"upgrade due (revision none, head {HEAD})" in err
    assert "run `monitor-api db upgrade`" in err
    with pytest.raises(SchemaMismatchError, match="upgrade due"):  # a server refuses to start
        open_database(_dsn(empty_db), create=True, wait=0)

    code, out, err = _cli(api_app, "monitor-api", empty_db, capsys, "upgrade")
    assert code == 0, err
    assert f"from no revision (made before schema revisions) to head revision {HEAD}" in out
    assert _describe(empty_db) == _describe(fresh_db)
    assert _diff(empty_db) == []
    with empty_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar_one() == 1
    code, out, _ = _cli(api_app, "monitor-api", empty_db, capsys, "check")
    assert (code, f"head {HEAD} (up to date)" in out) == (0, True)


def test_upgrade_is_idempotent_and_the_scorer_has_it_too(
    empty_db: Engine, fresh_db: Engine, repo_root: Path, capsys: Any
) -> None:
    _make_old(empty_db, "baseline", repo_root)
    assert _cli(scorer_app, "monitor-scorer", empty_db, capsys, "upgrade")[0] == 0
    upgraded = _describe(empty_db)
    code, out, _ = _cli(scorer_app, "monitor-scorer", empty_db, capsys, "upgrade")
    assert code == 0
    assert f": already at head revision {HEAD}" in out
    code, out, _ = _cli(api_app, "monitor-api", empty_db, capsys, "init")
    assert (code, f"already at head revision {HEAD}" in out) == (0, True)
    assert _describe(empty_db) == upgraded == _describe(fresh_db)


def test_versioned_database_behind_head_upgrades(
    empty_db: Engine, fresh_db: Engine, capsys: Any
) -> None:
    with empty_db.connect() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.commit()
    code, _, err = _cli(api_app, "monitor-api", empty_db, capsys, "check")
    assert (code, f"upgrade due (revision 0002, head {HEAD})" in err) == (1, True)
    code, out, _ = _cli(api_app, "monitor-api", empty_db, capsys, "upgrade")
    assert (code, f"from revision 0002 to head revision {HEAD}" in out) == (0, True)
    assert _describe(empty_db) == _describe(fresh_db)


def test_revisions_agree_with_the_metadata(empty_db: Engine, fresh_db: Engine) -> None:
    """Replaying every revision on an empty database gives exactly the metadata's schema.

    A change to ``db/tables.py`` without a revision fails here: autogenerate finds a diff.
    """
    with empty_db.connect() as conn:
        run_revisions(conn)
        conn.commit()
    assert _diff(empty_db) == []
    assert _describe(empty_db) == _describe(fresh_db)


def test_a_missing_revision_is_detected(empty_db: Engine) -> None:
    """The agreement check is not vacuous: a database one revision short shows the diff."""
    with empty_db.connect() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.commit()
    diff = _diff(empty_db)
    later = {"traceroute_state", "traceroutes", "export_cursors"}  # revisions 0004 and 0005
    assert [(d[0], d[1].name) for d in diff if d[1].name not in later and d[0] != "add_index"] == []
    assert [d[1].name for d in diff if d[0] == "add_index" and d[1].table.name not in later] == [
        "monitor_queue"
    ]
    assert {d[1].name for d in diff if d[0] == "add_table"} == later


def test_unknown_revision_is_refused(fresh_db: Engine, capsys: Any) -> None:
    with fresh_db.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    for command_name in ("check", "upgrade"):
        code, _, err = _cli(api_app, "monitor-api", fresh_db, capsys, command_name)
        assert code == 1
        assert "revision f00d, which this ntpmon does not know" in err
        assert len(err.strip().splitlines()) == 1
