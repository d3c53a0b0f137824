"""SQLAlchemy Core metadata of the eight tables ntpmon owns (spec/database.md §13).

This is the single source of the schema: ``schema.sql`` (MySQL DDL) is generated from it, and
SQLite databases are created from it. Column order matches production so row shapes agree.
Deliberate differences from production: no FKs to the absent ``users`` table and no redundant
``token_id`` unique key.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Enum,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    func,
)

from ntpmon.db import types as t

metadata = MetaData()

_MYSQL_OPTS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb3", "sqlite_autoincrement": True}
_NO_AUTOINC = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb3"}


def _enum(name: str, *values: str) -> Enum:
    return Enum(
        *values, name=name, native_enum=True, create_constraint=True, validate_strings=False
    )


def _modified_on(name: str = "modified_on") -> Column:
    return Column(
        name,
        t.timestamp(),
        nullable=False,
        server_default=t.CurrentTimestampOnUpdate(),
        onupdate=func.current_timestamp(),
    )


accounts = Table(
    "accounts",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("id_token", String(36)),
    Column("name", String(255)),
    Column("organization_name", String(150)),
    Column("organization_url", String(150)),
    Column("public_profile", t.tinyint1(), nullable=False, server_default="0"),
    Column("url_slug", String(150)),
    Column("flags", t.json_text()),
    Column("created_on", t.datetime0(), nullable=False),
    _modified_on(),
    Column("stripe_customer_id", t.varchar_bin(255)),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("url_slug", name="url_slug_idx"),
    UniqueConstraint("stripe_customer_id", name="stripe_customer_id"),
    UniqueConstraint("id_token", name="id_token"),
    **_MYSQL_OPTS,
)

monitors = Table(
    "monitors",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("id_token", String(36)),
    Column(
        "type", _enum("monitor_type", "monitor", "score"), nullable=False, server_default="monitor"
    ),
    Column("user_id", t.uint()),
    Column("account_id", t.uint()),
    Column("hostname", String(255), nullable=False, server_default=""),
    Column("location", String(255), nullable=False, server_default=""),
    Column("ip", String(40)),
    Column("ip_version", _enum("monitor_ip_version", "v4", "v6")),
    Column("tls_name", String(255)),
    Column("api_key", String(64)),
    Column(
        "status",
        _enum("monitor_status", "pending", "testing", "active", "paused", "deleted"),
        nullable=False,
    ),
    Column("config", t.text(), nullable=False),
    Column("client_version", String(255), nullable=False, server_default=""),
    Column("last_seen", t.datetime6()),
    Column("last_submit", t.datetime6()),
    Column("created_on", t.datetime0(), nullable=False),
    Column("deleted_on", t.datetime0()),
    Column("is_current", t.tinyint1(), server_default="1"),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("api_key", name="api_key"),
    UniqueConstraint("tls_name", "ip_version", name="monitors_tls_name"),
    UniqueConstraint("id_token", name="id_token"),
    UniqueConstraint("ip", "is_current", name="ip"),
    Index("monitors_user_id", "user_id"),
    Index("monitors_account_fk", "account_id"),
    Index("type_status", "type", "status"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], name="monitors_account_fk"),
    **_MYSQL_OPTS,
)

servers = Table(
    "servers",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("ip", String(40), nullable=False),
    Column(
        "ip_version", _enum("server_ip_version", "v4", "v6"), nullable=False, server_default="v4"
    ),
    Column("user_id", t.uint()),
    Column("account_id", t.uint()),
    Column("hostname", String(255)),
    Column("stratum", t.utinyint()),
    Column("in_pool", t.utinyint(), nullable=False, server_default="0"),
    Column("in_server_list", t.utinyint(), nullable=False, server_default="0"),
    Column("netspeed", t.uint(), nullable=False, server_default="10000"),
    Column("netspeed_target", t.uint(), nullable=False, server_default="10000"),
    Column("created_on", t.datetime0(), nullable=False),
    _modified_on("updated_on"),
    Column("score_ts", t.datetime0()),
    Column("score_raw", t.double(), nullable=False, server_default="0"),
    Column("deletion_on", t.date()),
    Column("flags", String(4096), nullable=False, server_default="{}"),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("ip", name="ip"),
    Index("admin", "user_id"),
    Index("score_ts", "score_ts"),
    Index("deletion_on", "deletion_on"),
    Index("server_account_fk", "account_id"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], name="server_account_fk"),
    **_MYSQL_OPTS,
)

log_scores = Table(
    "log_scores",
    metadata,
    Column("id", t.ubigint(), nullable=False, autoincrement=True),
    Column("monitor_id", t.uint()),
    Column("server_id", t.uint(), nullable=False),
    Column("ts", t.datetime0(), nullable=False),
    Column("score", t.double(), nullable=False, server_default="0"),
    Column("step", t.double(), nullable=False, server_default="0"),
    Column("offset", t.double(), quote=True),  # reserved in MariaDB >= 10.6
    Column("rtt", t.mediumint()),
    Column("attributes", t.text()),
    PrimaryKeyConstraint("id"),
    # Wider than production's (server_id, ts): the extra columns make the scorer's per-monitor
    # latest-row scan and the selector's 24 h aggregate (Q31) index-only (docs/operations.md).
    Index("log_scores_server_ts_idx", "server_id", "ts", "monitor_id", "step", "rtt"),
    Index("ts", "ts"),
    Index("log_score_monitor_id_fk", "monitor_id"),
    ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name="log_score_monitor_id_fk"),
    ForeignKeyConstraint(
        ["server_id"], ["servers.id"], name="log_scores_server", ondelete="CASCADE"
    ),
    **_MYSQL_OPTS,
)

server_scores = Table(
    "server_scores",
    metadata,
    Column("id", t.ubigint(), nullable=False, autoincrement=True),
    Column("monitor_id", t.uint(), nullable=False),
    Column("server_id", t.uint(), nullable=False),
    Column("score_ts", t.datetime0()),
    Column("score_raw", t.double(), nullable=False, server_default="0"),
    Column("stratum", t.utinyint()),
    Column(
        "status",
        _enum("server_score_status", "candidate", "testing", "active", "paused"),
        nullable=False,
        server_default="candidate",
    ),
    Column("queue_ts", t.datetime0()),
    Column("created_on", t.datetime0(), nullable=False),
    _modified_on(),
    Column("constraint_violation_type", String(50)),
    Column("constraint_violation_since", t.datetime0()),
    Column("last_constraint_check", t.datetime0()),
    Column("pause_reason", String(20)),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("server_id", "monitor_id", name="server_id"),
    Index("monitor_id", "monitor_id", "server_id"),
    Index("monitor_id_2", "monitor_id", "score_ts"),
    # Not in production: GetServers' due-servers query (Q10) reads a monitor's assignments in
    # queue order through it and stops after batch_size rows, instead of sorting them all.
    Index("monitor_queue", "monitor_id", "queue_ts"),
    Index("idx_constraint_violation", "constraint_violation_type", "constraint_violation_since"),
    Index("idx_paused_monitors", "status", "last_constraint_check", "pause_reason"),
    ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name="server_score_monitor_fk"),
    ForeignKeyConstraint(
        ["server_id"], ["servers.id"], name="server_score_server_id", ondelete="CASCADE"
    ),
    **_MYSQL_OPTS,
)

scorer_status = Table(
    "scorer_status",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("scorer_id", t.uint(), nullable=False),
    Column("log_score_id", t.ubigint(), nullable=False),
    _modified_on(),
    PrimaryKeyConstraint("id"),
    Index("scorer_log_score_id", "log_score_id"),
    Index("scores_status_monitor_id_fk", "scorer_id"),
    ForeignKeyConstraint(["log_score_id"], ["log_scores.id"], name="scorer_log_score_id"),
    ForeignKeyConstraint(["scorer_id"], ["monitors.id"], name="scores_status_monitor_id_fk"),
    **_MYSQL_OPTS,
)

servers_monitor_review = Table(
    "servers_monitor_review",
    metadata,
    Column("server_id", t.uint(), nullable=False, autoincrement=False),
    Column("last_review", t.datetime0()),
    Column("next_review", t.datetime0()),
    Column("last_change", t.datetime0()),
    Column("config", String(4096), nullable=False, server_default=""),
    PrimaryKeyConstraint("server_id"),
    Index("next_review", "next_review"),
    ForeignKeyConstraint(
        ["server_id"], ["servers.id"], name="server_monitor_review_server_id_fk", ondelete="CASCADE"
    ),
    **_NO_AUTOINC,
)

system_settings = Table(
    "system_settings",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("value", t.text(), nullable=False),
    Column("created_on", t.datetime0(), nullable=False),
    _modified_on(),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("key", name="key"),
    **_MYSQL_OPTS,
)

# ntpmon's own additions (not in the production NTP Pool schema): monitor-api hosts agent
# registration and API keys itself (DESIGN.md), so it needs somewhere to keep them.
registrations = Table(
    "registrations",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("registration_id", String(26), nullable=False),
    Column("hostname", String(255), nullable=False, server_default=""),
    Column("account_ref", String(255)),
    Column("ipv4", String(40)),
    Column("ipv6", String(40)),
    Column(
        "status",
        _enum("registration_status", "pending", "approved", "completed"),
        nullable=False,
        server_default="pending",
    ),
    Column("account_id", t.uint()),
    Column("tls_name", String(255)),
    Column("created_on", t.datetime0(), nullable=False),
    Column("last_seen", t.datetime0(), nullable=False),
    Column("approved_on", t.datetime0()),
    Column("completed_on", t.datetime0()),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("registration_id", name="registration_id"),
    Index("registrations_status", "status"),
    **_MYSQL_OPTS,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", t.uint(), nullable=False, autoincrement=True),
    Column("key_hash", String(64), nullable=False),
    Column("tls_name", String(255), nullable=False),
    Column("account_id", t.uint()),
    Column("created_on", t.datetime0(), nullable=False),
    Column("last_used_on", t.datetime0()),
    Column("revoked_on", t.datetime0()),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("key_hash", name="key_hash"),
    Index("api_keys_tls_name", "tls_name"),
    **_MYSQL_OPTS,
)

# Traceroutes (issue 17): agents trace the path to a server when a monitor's view of its health
# changes, or on request. ``traceroute_state`` remembers per assignment the last path-relevant
# health and when a trace was asked for (the rule in ntpmon.api.traceplan); ``traceroutes``
# keeps the results, ids in insertion order for an exporter.
traceroute_state = Table(
    "traceroute_state",
    metadata,
    Column("monitor_id", t.uint(), nullable=False, autoincrement=False),
    Column("server_id", t.uint(), nullable=False, autoincrement=False),
    Column("health", String(16), nullable=False),
    Column("health_ts", t.datetime0(), nullable=False),
    Column("trace_due", t.datetime0()),
    Column("last_trace", t.datetime0()),
    PrimaryKeyConstraint("monitor_id", "server_id"),
    Index("traceroute_state_server", "server_id"),
    ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name="traceroute_state_monitor_fk"),
    ForeignKeyConstraint(
        ["server_id"], ["servers.id"], name="traceroute_state_server_fk", ondelete="CASCADE"
    ),
    **_NO_AUTOINC,
)

traceroutes = Table(
    "traceroutes",
    metadata,
    Column("id", t.ubigint(), nullable=False, autoincrement=True),
    Column("monitor_id", t.uint(), nullable=False),
    Column("server_id", t.uint(), nullable=False),
    Column("ts", t.datetime0(), nullable=False),
    Column("reason", String(16), nullable=False, server_default=""),
    Column("reached", t.tinyint1(), nullable=False, server_default="0"),
    Column("stop", String(16), nullable=False, server_default=""),
    Column("hops", t.utinyint(), nullable=False, server_default="0"),
    Column("result", t.text(), nullable=False),
    Column("created_on", t.datetime0(), nullable=False),
    PrimaryKeyConstraint("id"),
    Index("traceroutes_server_ts", "server_id", "ts"),
    Index("traceroutes_monitor", "monitor_id"),
    ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name="traceroutes_monitor_fk"),
    ForeignKeyConstraint(
        ["server_id"], ["servers.id"], name="traceroutes_server_fk", ondelete="CASCADE"
    ),
    **_MYSQL_OPTS,
)

# ntpmon's analytics exporter (docs/operations.md "Analytics and retention"): one cursor per
# exported table, the highest source id known to be in ClickHouse. Retention reads it so it never
# deletes a row the exporter has not copied yet.
export_cursors = Table(
    "export_cursors",
    metadata,
    Column("stream", String(64), nullable=False),
    Column("last_id", t.ubigint(), nullable=False, server_default="0"),
    _modified_on(),
    PrimaryKeyConstraint("stream"),
    **_NO_AUTOINC,
)

ALL_TABLES = (
    accounts,
    monitors,
    servers,
    log_scores,
    server_scores,
    scorer_status,
    servers_monitor_review,
    system_settings,
)
