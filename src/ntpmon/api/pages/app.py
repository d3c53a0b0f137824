"""The status pages as a read-only Starlette application, mountable into monitor-api.

A thin adapter: parse the request, run the queries of ``ntpmon.db.pages`` in one read
transaction, hand the rows to the pure views. Handlers are synchronous so Starlette runs them
in its thread pool and a slow database never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ntpmon.analytics.archive import Archive
from ntpmon.api.pages import views
from ntpmon.common.clock import Clock, SystemClock, as_utc
from ntpmon.db import analytics as export_queries
from ntpmon.db import clickhouse
from ntpmon.db import pages as queries
from ntpmon.db.traceroutes import recent_traceroutes

OnlineSource = Callable[[], Mapping[str, bool]]
"""Returns ``{tls_name: online}`` (e.g. from the MQTT status tracker); absent = unknown."""

DEFAULT_HOURS = 24
MAX_HOURS = int(queries.DATABASE_HISTORY.total_seconds() // 3600)
MAX_HOURS_WITH_ARCHIVE = 24 * 366
"""With ClickHouse configured a page reaches back a year (downsampled there)."""
ARCHIVE_POINTS = 2000
MAX_ROW_ID = 2**32 - 1  # servers.id and monitors.id are unsigned 32-bit columns
"""Points per monitor a page asks ClickHouse for: the bucket is the window over this."""


class HistoryWindowError(ValueError):
    """The ``hours`` query parameter is not a whole number of hours in the allowed range."""


def history_hours(raw: str | None, max_hours: int = MAX_HOURS) -> int:
    """The history window of a server page: ``?hours=N`` with 1 ≤ N ≤ max, default 24."""
    if raw is None or raw == "":
        return DEFAULT_HOURS
    try:
        hours = int(raw)
    except ValueError:
        raise HistoryWindowError(f"hours must be a whole number, got {raw!r}") from None
    if not 1 <= hours <= max_hours:
        raise HistoryWindowError(f"hours must be between 1 and {max_hours}, got {hours}")
    return hours


def _history(
    conn: Connection, archive: Archive | None, server_id: int, start: datetime, now: datetime
) -> list[queries.HistoryPoint]:
    """A server's history since ``start``: from the database, and from ClickHouse for the part
    the database no longer holds.

    Retention deletes only exported rows, oldest ids first, so when the window reaches before
    the oldest row the database keeps, ClickHouse has everything up to the export cursor
    (downsampled to :data:`ARCHIVE_POINTS` per monitor) and the database the rows after it.
    """
    oldest = export_queries.oldest_log_score(conn)
    if archive is None or oldest is None or as_utc(oldest[1]) <= start:
        return queries.server_history(conn, server_id=server_id, since=start)
    exported = export_queries.get_export_cursor(conn, clickhouse.LOG_SCORES.name) or 0
    recent = queries.server_history(conn, server_id=server_id, since=start, after_id=exported)
    bucket = int((now - start).total_seconds()) // ARCHIVE_POINTS
    with archive.session() as client:
        archived = clickhouse.server_history(
            client, server_id=server_id, since=start, until=now, bucket_s=bucket, max_id=exported
        )
    types = queries.monitor_types(conn, {p.monitor_id for p in archived if p.monitor_id})
    older = [
        queries.HistoryPoint(
            monitor_id=p.monitor_id,
            monitor_type=types.get(p.monitor_id) if p.monitor_id is not None else None,
            ts=p.ts,
            score=p.score,
            step=p.step,
            offset=p.offset,
            rtt=p.rtt,
        )
        for p in archived
    ]
    return older + recent


def create_pages_app(
    engine: Engine,
    *,
    clock: Clock | None = None,
    online: OnlineSource | None = None,
    archive: Archive | None = None,
) -> Starlette:
    """Build the status pages: ``/`` servers, ``/servers/{id}`` one server, ``/monitors``,
    ``/monitors/{id}`` one monitor.

    ``online`` is optional: without an MQTT tracker the monitors page leaves the online
    column out instead of guessing. ``archive`` (ClickHouse) lets a server page reach back
    beyond the database's retention.
    """
    time = clock or SystemClock()
    max_hours = MAX_HOURS_WITH_ARCHIVE if archive is not None else MAX_HOURS

    def nav(request: Request) -> dict[str, str]:
        return {
            "Servers": str(request.url_for("servers")),
            "Monitors": str(request.url_for("monitors")),
        }

    def monitor_url(request: Request) -> Callable[[int], str]:
        return lambda i: str(request.url_for("monitor", monitor_id=i))

    def servers(request: Request) -> Response:
        now = time.now()
        with engine.connect() as conn:
            rows = queries.list_server_overviews(conn)
        return HTMLResponse(
            views.servers_page(
                rows,
                server_url=lambda i: str(request.url_for("server", server_id=i)),
                nav=nav(request),
                now=now,
            )
        )

    def server(request: Request) -> Response:
        server_id: int = request.path_params["server_id"]
        if server_id > MAX_ROW_ID:  # no such row, and SQLite cannot bind a larger integer
            return PlainTextResponse(f"no server with id {server_id}", status_code=404)
        raw_hours = request.query_params.get("hours")
        try:
            hours = history_hours(raw_hours, max_hours)
        except HistoryWindowError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        now = time.now()
        start = now - timedelta(hours=hours)
        with engine.connect() as conn:
            overview = queries.get_server_overview(conn, server_id=server_id)
            if overview is None:
                return PlainTextResponse(f"no server with id {server_id}", status_code=404)
            assignments = queries.list_server_assignments(conn, server_id=server_id)
            history = _history(conn, archive, server_id, start, now)
            ids = {p.monitor_id for p in history if p.monitor_id is not None}
            names = queries.monitor_names(conn, ids | {a.monitor_id for a in assignments})
            traces = recent_traceroutes(conn, server_id=server_id)
        if not raw_hours:  # default window: zoom in on a young server's history
            start = views.view_start(start, history, now)
        return HTMLResponse(
            views.server_page(
                overview,
                assignments,
                history,
                names,
                start=start,
                now=now,
                nav=nav(request),
                monitor_url=monitor_url(request),
                traces=traces,
            )
        )

    def monitors(request: Request) -> Response:
        now = time.now()
        with engine.connect() as conn:
            rows = queries.list_monitor_overviews(conn)
        return HTMLResponse(
            views.monitors_page(
                rows,
                online=online() if online else None,
                nav=nav(request),
                now=now,
                monitor_url=monitor_url(request),
            )
        )

    def monitor(request: Request) -> Response:
        monitor_id: int = request.path_params["monitor_id"]
        if monitor_id > MAX_ROW_ID:
            return PlainTextResponse(f"no monitor with id {monitor_id}", status_code=404)
        now = time.now()
        with engine.connect() as conn:
            overview = queries.get_monitor_overview(conn, monitor_id=monitor_id)
            if overview is None:
                return PlainTextResponse(f"no monitor with id {monitor_id}", status_code=404)
            assignments = queries.list_monitor_assignments(conn, monitor_id=monitor_id)
        return HTMLResponse(
            views.monitor_page(
                overview,
                assignments,
                online=online() if online else None,
                nav=nav(request),
                now=now,
                server_url=lambda i: str(request.url_for("server", server_id=i)),
            )
        )

    return Starlette(
        routes=[
            Route("/", servers, name="servers"),
            Route("/servers/{server_id:int}", server, name="server"),
            Route("/monitors", monitors, name="monitors"),
            Route("/monitors/{monitor_id:int}", monitor, name="monitor"),
        ]
    )
