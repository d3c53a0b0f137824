"""Storing an agent's traceroute message: the one rule both ingest paths share (issue 17).

Agents deliver traces two ways: published on MQTT (:mod:`ntpmon.api.mqserver.traceroutes`) or,
when they have no broker connection, uploaded to the management API
(``POST /monitor/api/traceroute``, :mod:`ntpmon.api.management`). Both decode the payload with
:func:`ntpmon.traceroute.result.decode_message` and store it here, so a trace means the same
thing in ``traceroutes`` whichever way it came. The caller decides what an outcome other than
:attr:`StoreOutcome.STORED` means to it (a log line on MQTT, an HTTP status on upload).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ntpmon.api import ipbytes
from ntpmon.api.mqserver.adhoc import target_ip_version
from ntpmon.db import traceroutes as tr
from ntpmon.db.models import Monitor
from ntpmon.db.tables import server_scores
from ntpmon.traceroute.result import TraceMessage


class StoreOutcome(enum.Enum):
    """What became of one message (the value is the one-line reason given to the caller)."""

    STORED = "stored"
    AGENT_ERROR = "the trace failed on the agent"
    NO_MONITOR = "no monitor of the target's address family"
    NOT_POOL_SERVER = "the target is not a pool server"
    NOT_ASSIGNED = "the target is not a server of this monitor"


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome and, when stored, the new row's id."""

    outcome: StoreOutcome
    row_id: int | None = None


def monitor_for(monitors: Iterable[Monitor], target: str) -> int | None:
    """The id of the agent's monitor row whose family matches ``target``."""
    wanted = target_ip_version(ipbytes.from_bytes(ipbytes.text_to_bytes(target)))
    return next((m.id for m in monitors if m.ip_version == wanted), None)


def _assigned(conn: Connection, *, monitor_id: int, server_id: int) -> bool:
    """Whether the monitor has a ``server_scores`` row for the server (any status)."""
    c = server_scores.c
    found = conn.execute(
        select(c.id).where(c.monitor_id == monitor_id, c.server_id == server_id).limit(1)
    ).first()
    return found is not None


def store_message(
    conn: Connection,
    *,
    monitors: Iterable[Monitor],
    message: TraceMessage,
    now: datetime,
    assigned_only: bool = False,
) -> Stored:
    """Match a decoded message to the agent's monitor and the server by IP, and insert it.

    ``assigned_only`` refuses servers the monitor is not assigned to: an upload only carries the
    traces GetServers asked for, which are always of the monitor's own servers, while MQTT also
    carries the answers to operators' requests, which may be of any pool server.
    """
    result = message.result
    if result is None:
        return Stored(StoreOutcome.AGENT_ERROR)
    monitor_id = monitor_for(monitors, result.target)
    if monitor_id is None:
        return Stored(StoreOutcome.NO_MONITOR)
    server_id = tr.server_id_by_ip(conn, result.target)
    if server_id is None:
        return Stored(StoreOutcome.NOT_POOL_SERVER)
    if assigned_only and not _assigned(conn, monitor_id=monitor_id, server_id=server_id):
        return Stored(StoreOutcome.NOT_ASSIGNED)
    row_id = tr.insert_traceroute(
        conn,
        monitor_id=monitor_id,
        server_id=server_id,
        result=result,
        reason=message.reason,
        now=now,
    )
    return Stored(StoreOutcome.STORED, row_id)
