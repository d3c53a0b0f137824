"""Traceroute state and results (tables ``traceroute_state``, ``traceroutes``; issue 17).

The rules are in :mod:`ntpmon.traceroute.plan` and :mod:`ntpmon.traceroute.result`; this module
only reads and writes rows. The states are read with the queries SubmitResults and GetServers
run anyway (``ntpmon.db.api``: the assignments read, the due-servers query); here SubmitResults
writes the changed ones (one statement, only when something changed) and GetServers stamps the
traces it asks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from ntpmon.common.clock import db_seconds
from ntpmon.db.dialect import RowsUpsert
from ntpmon.db.tables import monitors, servers, traceroute_state, traceroutes
from ntpmon.traceroute.plan import TraceState
from ntpmon.traceroute.result import TraceResult, to_json

_SAVE_STATES = RowsUpsert.of(
    traceroute_state,
    conflict=("monitor_id", "server_id"),
    update=("health", "health_ts", "trace_due", "last_trace"),
)


def save_states(conn: Connection, *, monitor_id: int, states: Mapping[int, TraceState]) -> int:
    """Write the changed states in one multi-row upsert (a batch's statement count is fixed)."""
    if not states:
        return 0
    rows = [
        {
            "monitor_id": monitor_id,
            "server_id": server_id,
            "health": state.health.value,
            "health_ts": db_seconds(state.health_ts),
            "trace_due": db_seconds(state.trace_due) if state.trace_due else None,
            "last_trace": db_seconds(state.last_trace) if state.last_trace else None,
        }
        for server_id, state in sorted(states.items())
    ]
    return _SAVE_STATES.execute(conn, rows)


def mark_traced(
    conn: Connection, *, monitor_id: int, server_ids: Iterable[int], now: datetime
) -> int:
    """The traces GetServers asks for: no longer due, last asked ``now``."""
    ids = sorted(set(server_ids))
    if not ids:
        return 0
    c = traceroute_state.c
    return conn.execute(
        update(traceroute_state)
        .where(c.monitor_id == monitor_id, c.server_id.in_(ids))
        .values(trace_due=None, last_trace=db_seconds(now))
    ).rowcount


def server_id_by_ip(conn: Connection, ip: str) -> int | None:
    """The id of the server with this canonical IP text."""
    return conn.execute(select(servers.c.id).where(servers.c.ip == ip)).scalar()


def insert_traceroute(
    conn: Connection,
    *,
    monitor_id: int,
    server_id: int,
    result: TraceResult,
    reason: str,
    now: datetime,
) -> int:
    """Store one validated result; returns its id."""
    row = conn.execute(
        insert(traceroutes).values(
            monitor_id=monitor_id,
            server_id=server_id,
            ts=db_seconds(result.started),
            reason=reason[:16],
            reached=result.reached,
            stop=result.stop,
            hops=min(len(result.hops), 255),
            result=json.dumps(to_json(result), separators=(",", ":")),
            created_on=db_seconds(now),
        )
    )
    return int(row.inserted_primary_key[0])


@dataclass(frozen=True, slots=True)
class StoredTrace:
    """A stored trace with the name of the monitor that ran it."""

    id: int
    monitor_id: int
    monitor_name: str
    ts: datetime
    reason: str
    result: TraceResult


def recent_traceroutes(conn: Connection, *, server_id: int, limit: int = 50) -> list[StoredTrace]:
    """The newest traces of a server, newest first (unparseable stored rows are skipped)."""
    from ntpmon.traceroute.result import TraceFormatError, from_json

    t, m = traceroutes.c, monitors.c
    rows = conn.execute(
        select(t.id, t.monitor_id, m.tls_name, m.hostname, t.ts, t.reason, t.result)
        .select_from(traceroutes.join(monitors, m.id == t.monitor_id))
        .where(t.server_id == server_id)
        .order_by(t.ts.desc(), t.id.desc())
        .limit(limit)
    )
    out = []
    for id_, monitor_id, tls_name, hostname, ts, reason, text in rows:
        try:
            result = from_json(json.loads(text))
        except (ValueError, TraceFormatError):
            continue
        name = (tls_name or hostname or str(monitor_id)).split(".", 1)[0]
        out.append(StoredTrace(id_, monitor_id, name, ts, reason, result))
    return out
