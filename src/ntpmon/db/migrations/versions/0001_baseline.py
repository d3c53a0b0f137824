"""Baseline: ntpmon's schema as of commit 01223e5 (the first with monitor-api's tables).

Runs the frozen DDL in ``baseline/``, whose statements all create only what is missing, so a
database made by any ntpmon before the revisions existed is adopted by running it.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

from alembic import op

from ntpmon.db.migrations.helpers import run_frozen_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES_CHILDREN_FIRST = (
    "scorer_status",
    "servers_monitor_review",
    "server_scores",
    "log_scores",
    "servers",
    "monitors",
    "system_settings",
    "registrations",
    "api_keys",
    "accounts",
)


def upgrade() -> None:
    run_frozen_sql("baseline")


def downgrade() -> None:
    for table in TABLES_CHILDREN_FIRST:
        op.drop_table(table)
