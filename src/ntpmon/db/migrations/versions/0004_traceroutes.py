"""Traceroutes (issue 17): tables traceroute_state and traceroutes.

``traceroute_state`` remembers, per monitor and server, the last path-relevant health and when a
trace was asked for; ``traceroutes`` keeps the agents' results. Both are new, so nothing is
migrated; a database loaded from a schema.sql that already has them is left as it is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ntpmon.db import types as t

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb3"}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "traceroute_state" not in existing:
        op.create_table(
            "traceroute_state",
            sa.Column("monitor_id", t.uint(), nullable=False, autoincrement=False),
            sa.Column("server_id", t.uint(), nullable=False, autoincrement=False),
            sa.Column("health", sa.String(16), nullable=False),
            sa.Column("health_ts", t.datetime0(), nullable=False),
            sa.Column("trace_due", t.datetime0()),
            sa.Column("last_trace", t.datetime0()),
            sa.PrimaryKeyConstraint("monitor_id", "server_id"),
            sa.Index("traceroute_state_server", "server_id"),
            sa.ForeignKeyConstraint(
                ["monitor_id"], ["monitors.id"], name="traceroute_state_monitor_fk"
            ),
            sa.ForeignKeyConstraint(
                ["server_id"], ["servers.id"], name="traceroute_state_server_fk", ondelete="CASCADE"
            ),
            **_MYSQL,
        )
    if "traceroutes" not in existing:
        op.create_table(
            "traceroutes",
            sa.Column("id", t.ubigint(), nullable=False, autoincrement=True),
            sa.Column("monitor_id", t.uint(), nullable=False),
            sa.Column("server_id", t.uint(), nullable=False),
            sa.Column("ts", t.datetime0(), nullable=False),
            sa.Column("reason", sa.String(16), nullable=False, server_default=""),
            sa.Column("reached", t.tinyint1(), nullable=False, server_default="0"),
            sa.Column("stop", sa.String(16), nullable=False, server_default=""),
            sa.Column("hops", t.utinyint(), nullable=False, server_default="0"),
            sa.Column("result", t.text(), nullable=False),
            sa.Column("created_on", t.datetime0(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.Index("traceroutes_server_ts", "server_id", "ts"),
            sa.Index("traceroutes_monitor", "monitor_id"),
            sa.ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name="traceroutes_monitor_fk"),
            sa.ForeignKeyConstraint(
                ["server_id"], ["servers.id"], name="traceroutes_server_fk", ondelete="CASCADE"
            ),
            sqlite_autoincrement=True,
            **_MYSQL,
        )


def downgrade() -> None:
    op.drop_table("traceroutes")
    op.drop_table("traceroute_state")
