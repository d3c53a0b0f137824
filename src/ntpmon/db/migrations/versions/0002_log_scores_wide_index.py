"""log_scores_server_ts_idx covers (server_id, ts, monitor_id, step, rtt), not (server_id, ts).

The scorer's latest-row-per-monitor scan and the selector's 24-hour aggregate then read only
the index. Databases made from upstream's schema or before commit b009ffe have the narrow one.
Online in MySQL 8 / MariaDB; it takes a while on a large ``log_scores``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-01
"""

from __future__ import annotations

from ntpmon.db.migrations.helpers import ensure_index

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "log_scores_server_ts_idx"


def upgrade() -> None:
    ensure_index("log_scores", INDEX, ["server_id", "ts", "monitor_id", "step", "rtt"])


def downgrade() -> None:
    ensure_index("log_scores", INDEX, ["server_id", "ts"])
