"""ntpmon's schema revisions (Alembic), run by :mod:`ntpmon.db.migrate`, never by hand.

``baseline/`` holds the schema of revision 0001 as it was released (MySQL DDL and its SQLite
twin), frozen so the baseline never moves when ``db/tables.py`` changes. A change to the tables
needs a new revision in ``versions/``; ``tests/db/test_migrations.py`` fails until the
revisions produce exactly what the metadata describes, and its assertion shows the diff
Alembic's autogenerate finds, i.e. what the new revision must do. Write it by hand after the
newest one in ``versions/`` (next number as ``revision``, the newest as ``down_revision``), with
``alembic.op`` operations that work on MySQL/MariaDB and SQLite.
"""
