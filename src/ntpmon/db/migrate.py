"""Schema revisions (Alembic) over the table metadata: where a database stands and the upgrade.

The revisions live in :mod:`ntpmon.db.migrations` inside the distribution and Alembic is set up
here in code, so an installed ntpmon upgrades a database with one command (``monitor-api db
upgrade``) and no ``alembic.ini``. A database made by an ntpmon older than the revisions has no
``alembic_version`` table; it is upgraded from the start, which is safe because the baseline
only creates what is missing and the revisions after it only add what is not already there
(such a database may be in any state between the baseline and the head).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect

from ntpmon.common.errors import NtpmonError
from ntpmon.db.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config


class SchemaMismatchError(NtpmonError):
    """The database's tables do not match what this version of ntpmon expects."""


class _QuietContext(logging.Filter):
    """Drop Alembic's per-connection chatter ("Context impl SQLiteImpl.", "Will assume
    transactional DDL."): every program start reads the revision, and those lines say nothing
    to an operator. The "Running upgrade 0002 -> 0003" lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_QuietContext())

SCRIPT_LOCATION = "ntpmon.db:migrations"
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True, slots=True)
class SchemaRevision:
    """Where a database stands against this ntpmon's revisions."""

    current: str | None  # None: no revision recorded (empty, or made before revisions existed)
    head: str
    known: bool  # False: a revision this ntpmon does not have (written by a newer version)
    has_tables: bool  # any of ntpmon's tables present

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        """``revision 0002, head 0003`` (or ``no revision``), for messages and ``db check``."""
        current = self.current or "none"
        return f"revision {current}, head {self.head}"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``connection`` is what env.py migrates."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this ntpmon has."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations package has no revisions"
    return head


def _owned_tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) & set(metadata.tables)


def schema_revision(conn: Connection) -> SchemaRevision:
    """Read the recorded revision (without changing anything)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(conn).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    known = current is None or current in {r.revision for r in script.walk_revisions()}
    head = script.get_current_head()
    assert head is not None
    return SchemaRevision(current, head, known, bool(_owned_tables(conn)))


def run_revisions(conn: Connection) -> None:
    """Apply every revision the database lacks, from the baseline on if none is recorded."""
    from alembic import command

    command.upgrade(alembic_config(conn), "head")


def _create_new(conn: Connection, state: SchemaRevision) -> bool:
    """Create the tables from the metadata and stamp head, if the database has none of them.

    A new database gets the current schema in one go rather than by replaying every revision;
    ``tests/db/test_migrations.py`` checks that both routes give the same schema.
    """
    from alembic import command

    if state.current is not None or state.has_tables:
        return False
    metadata.create_all(conn)
    command.stamp(alembic_config(conn), "head")
    return True


def create_new_schema(engine: Engine) -> None:
    """Create ntpmon's tables in a database that has none (a server's embedded SQLite file);
    an existing database is left for :func:`ntpmon.db.ddl.check_schema` to judge."""
    with engine.connect() as conn:
        if _create_new(conn, schema_revision(conn)):
            conn.commit()


def upgrade_schema(engine: Engine) -> tuple[SchemaRevision, SchemaRevision]:
    """Bring the database to the head revision; returns where it stood before and after.

    On SQLite the whole upgrade is one transaction; MySQL commits each DDL statement by itself,
    which is why every revision is written so that running it again after an interruption
    completes it.
    """
    with engine.connect() as conn:
        before = schema_revision(conn)
        if not before.known:
            raise_unknown(before)
        if not _create_new(conn, before) and not before.at_head:
            run_revisions(conn)
        conn.commit()
        after = schema_revision(conn)
        conn.commit()
    return before, after


def raise_unknown(state: SchemaRevision) -> None:
    """A database a newer ntpmon upgraded must not be run (or migrated) by an older one."""
    raise SchemaMismatchError(
        f"database schema is at revision {state.current}, which this ntpmon does not know "
        f"(its newest is {state.head}): it was upgraded by a newer ntpmon; run that version"
    )
