"""Analytics: table export_cursors, the ClickHouse exporter's persisted cursor per stream.

One row per exported table (``log_scores``; later traceroutes): the highest source id known to
be in ClickHouse. ``monitor-scorer retention`` never deletes above it (docs/operations.md,
"Analytics and retention").

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, PrimaryKeyConstraint, String, func, inspect

from ntpmon.db import types as t

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made from a schema.sql of this revision or later already has it.
    if inspect(op.get_bind()).has_table("export_cursors"):
        return
    op.create_table(
        "export_cursors",
        Column("stream", String(64), nullable=False),
        Column("last_id", t.ubigint(), nullable=False, server_default="0"),
        Column(
            "modified_on",
            t.timestamp(),
            nullable=False,
            server_default=t.CurrentTimestampOnUpdate(),
            onupdate=func.current_timestamp(),
        ),
        PrimaryKeyConstraint("stream"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb3",
    )


def downgrade() -> None:
    op.drop_table("export_cursors")
