"""server_scores gets index monitor_queue (monitor_id, queue_ts).

GetServers' due-servers query reads a monitor's assignments in queue order through it and stops
after one batch instead of sorting all of them. Databases made before commit b6c0b1c lack it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-01
"""

from __future__ import annotations

from alembic import op

from ntpmon.db.migrations.helpers import ensure_index

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ensure_index("server_scores", "monitor_queue", ["monitor_id", "queue_ts"])


def downgrade() -> None:
    op.drop_index("monitor_queue", table_name="server_scores")
