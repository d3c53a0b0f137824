"""Operator and seed writes (spec/database.md §12.8).

Upstream leaves accounts, servers, monitors and assignments to the NTP Pool web app; ntpmon is
self-contained, so these functions are what ``monitor-api admin`` and ``make run`` use.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, literal, select, update

from ntpmon.common.clock import db_seconds
from ntpmon.db.dialect import insert_ignore, upsert
from ntpmon.db.models import (
    Account,
    IpVersion,
    Monitor,
    MonitorStatus,
    MonitorType,
    Server,
    from_row,
)
from ntpmon.db.tables import (
    accounts,
    monitors,
    server_scores,
    servers,
    servers_monitor_review,
    system_settings,
)

SYSTEM_MONITOR_NAME = "settings"


def ip_version_of(ip: str) -> IpVersion:
    """``v4`` or ``v6`` from the address text (raises ValueError for a non-address)."""
    return IpVersion.V4 if ipaddress.ip_address(ip).version == 4 else IpVersion.V6


def canonical_ip(ip: str) -> str:
    """The canonical text form servers are looked up by (compressed, lower-case IPv6)."""
    return str(ipaddress.ip_address(ip.strip()))


def create_account(
    conn: Connection,
    *,
    name: str,
    now: datetime,
    flags: dict[str, Any] | None = None,
    id_token: str | None = None,
) -> int:
    result = conn.execute(
        insert(accounts).values(
            name=name,
            created_on=db_seconds(now),
            id_token=id_token,
            flags=json.dumps(flags) if flags is not None else None,
        )
    )
    return int(result.inserted_primary_key[0])


def get_account(conn: Connection, *, id: int) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.id == id)).first()
    return from_row(Account, row) if row else None


def create_server(
    conn: Connection,
    *,
    ip: str,
    now: datetime,
    account_id: int | None = None,
    hostname: str | None = None,
) -> int:
    """Add a server under test; its selector review row is created with it."""
    text_ip = canonical_ip(ip)
    result = conn.execute(
        insert(servers).values(
            ip=text_ip,
            ip_version=str(ip_version_of(text_ip)),
            account_id=account_id,
            hostname=hostname,
            created_on=db_seconds(now),
        )
    )
    server_id = int(result.inserted_primary_key[0])
    ensure_review_row(conn, server_id=server_id)
    return server_id


def list_servers(conn: Connection) -> list[Server]:
    return [from_row(Server, r) for r in conn.execute(select(servers).order_by(servers.c.id))]


def get_server_by_id(conn: Connection, *, id: int) -> Server | None:
    row = conn.execute(select(servers).where(servers.c.id == id)).first()
    return from_row(Server, row) if row else None


def schedule_server_deletion(conn: Connection, *, id: int, on: datetime) -> int:
    """Servers are not deleted outright: ``deletion_on`` stops them being handed out."""
    return conn.execute(
        update(servers).where(servers.c.id == id).values(deletion_on=on.date())
    ).rowcount


def create_monitor(
    conn: Connection,
    *,
    tls_name: str,
    ip: str,
    now: datetime,
    account_id: int | None = None,
    status: MonitorStatus = MonitorStatus.PENDING,
    config: dict[str, Any] | None = None,
    id_token: str | None = None,
    hostname: str = "",
) -> int:
    """Add an agent monitor row for one IP version (derived from ``ip``)."""
    text_ip = canonical_ip(ip)
    result = conn.execute(
        insert(monitors).values(
            type=str(MonitorType.MONITOR),
            tls_name=tls_name,
            ip=text_ip,
            ip_version=str(ip_version_of(text_ip)),
            account_id=account_id,
            status=str(status),
            config=json.dumps(config or {}),
            id_token=id_token,
            hostname=hostname,
            created_on=db_seconds(now),
        )
    )
    return int(result.inserted_primary_key[0])


def get_monitor_by_id(conn: Connection, *, id: int) -> Monitor | None:
    row = conn.execute(select(monitors).where(monitors.c.id == id)).first()
    return from_row(Monitor, row) if row else None


def list_monitors(
    conn: Connection,
    *,
    include_deleted: bool = False,
    type: MonitorType | None = MonitorType.MONITOR,
) -> list[Monitor]:
    query = select(monitors).order_by(monitors.c.tls_name, monitors.c.ip_version, monitors.c.id)
    if type is not None:
        query = query.where(monitors.c.type == str(type))
    if not include_deleted:
        query = query.where(monitors.c.deleted_on.is_(None))
    return [from_row(Monitor, r) for r in conn.execute(query)]


def set_monitor_status(conn: Connection, *, id: int, status: MonitorStatus, now: datetime) -> int:
    """Change a monitor's global status; ``deleted`` also stamps ``deleted_on``."""
    values: dict[str, Any] = {"status": str(status)}
    if status is MonitorStatus.DELETED:
        values["deleted_on"] = db_seconds(now)
    return conn.execute(update(monitors).where(monitors.c.id == id).values(**values)).rowcount


_ASSIGNMENT_COLUMNS = ["monitor_id", "status", "server_id", "score_raw", "created_on"]


def _assign_candidates(
    conn: Connection, now: datetime, *, monitor_id: int | None = None, server_id: int | None = None
) -> int:
    """Insert ``candidate`` rows for live monitors x servers of the same IP version.

    The statement the NTP Pool web app runs on activation (spec/database.md §1), narrowed to
    one monitor or one server; existing assignments are kept as they are.
    """
    m = monitors.alias("m")
    s = servers.alias("s")
    conditions = [
        s.c.ip_version == m.c.ip_version,
        m.c.type == "monitor",
        m.c.status.in_(["active", "testing"]),
        m.c.ip.is_not(None),
        m.c.deleted_on.is_(None),
        s.c.deletion_on.is_(None),
    ]
    if monitor_id is not None:
        conditions.append(m.c.id == monitor_id)
    if server_id is not None:
        conditions.append(s.c.id == server_id)
    source = select(
        m.c.id, literal("candidate"), s.c.id, s.c.score_raw, literal(db_seconds(now))
    ).where(and_(*conditions))
    return insert_ignore(conn, server_scores, (_ASSIGNMENT_COLUMNS, source))


def assign_monitor_to_servers(conn: Connection, *, monitor_id: int, now: datetime) -> int:
    """Make a live monitor a ``candidate`` for every server of its IP version."""
    return _assign_candidates(conn, now, monitor_id=monitor_id)


def assign_server_to_monitors(conn: Connection, *, server_id: int, now: datetime) -> int:
    """The other direction: a new server gets every live monitor of its IP version."""
    return _assign_candidates(conn, now, server_id=server_id)


def ensure_review_row(conn: Connection, *, server_id: int) -> int:
    """One ``servers_monitor_review`` row per server, due at once (NULL next_review)."""
    return insert_ignore(conn, servers_monitor_review, [{"server_id": server_id}])


def set_system_setting(conn: Connection, *, key: str, value: Any, now: datetime) -> int:
    """Store ``value`` as JSON text under ``key`` (insert or replace)."""
    return upsert(
        conn,
        system_settings,
        {"key": key, "value": json.dumps(value), "created_on": db_seconds(now)},
        conflict=["key"],
        update=["value"],
    )


def ensure_system_monitor(
    conn: Connection, *, ip_version: IpVersion, config: dict[str, Any], now: datetime
) -> int:
    """The ``settings-v4.system``/``settings-v6.system`` row whose config every monitor inherits."""
    tls_name = f"{SYSTEM_MONITOR_NAME}-{ip_version}.system"
    existing = conn.execute(
        select(monitors.c.id).where(
            monitors.c.tls_name == tls_name, monitors.c.ip_version == str(ip_version)
        )
    ).scalar()
    if existing is not None:
        conn.execute(
            update(monitors).where(monitors.c.id == existing).values(config=json.dumps(config))
        )
        return int(existing)
    result = conn.execute(
        insert(monitors).values(
            type=str(MonitorType.MONITOR),
            tls_name=tls_name,
            ip_version=str(ip_version),
            status=str(MonitorStatus.ACTIVE),
            config=json.dumps(config),
            hostname="",
            created_on=db_seconds(now),
        )
    )
    return int(result.inserted_primary_key[0])
