"""The status pages as pure functions from query results to HTML.

No I/O here: the Starlette adapter (``app.py``) runs the queries and passes the rows, the
clock's ``now`` and URL builders in, which keeps every page testable without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape

from ntpmon.api.pages import html as h
from ntpmon.api.pages.svg import (
    PALETTE,
    Series,
    offset_scale,
    score_scale,
    time_chart,
)
from ntpmon.common.clock import as_utc
from ntpmon.db.models import MonitorType
from ntpmon.db.pages import (
    Assignment,
    HistoryPoint,
    MonitorOverview,
    ServerAssignment,
    ServerOverview,
)
from ntpmon.db.traceroutes import StoredTrace
from ntpmon.traceroute.result import Hop, TraceResult, path_changes

STATUS_ORDER = ("active", "testing", "candidate", "paused")
SCORER_STYLE = {"recentmedian": ("#000000", 2.5), "every": ("#9a9a9a", 1.5)}
"""How the scorers' own series look in the score graph: the overall score stands out."""
OVERALL_SCORER = "recentmedian"
"""The scorer whose score is the server's own (``servers.score_raw``)."""
Standing = Mapping[int, tuple[datetime, float]]
"""Per monitor id: the time and value of its current score for the server."""


def window_label(start: datetime, now: datetime) -> str:
    """``last 24 h`` or, for a short window, ``last 7 min``."""
    minutes = round((now - start).total_seconds() / 60)
    return f"last {round(minutes / 60)} h" if minutes >= 60 else f"last {max(1, minutes)} min"


def view_start(window_start: datetime, history: Sequence[HistoryPoint], now: datetime) -> datetime:
    """Where the graphs begin: the window, or shortly before the first point of a young server.

    A server measured for ten minutes would otherwise be a sliver at the right edge of a
    24-hour axis.
    """
    if not history:
        return window_start
    first = as_utc(history[0].ts)
    margin = max(timedelta(minutes=1), (now - first) * 0.05)
    return max(as_utc(window_start), first - margin)


def _counts_markup(counts: Mapping[str, int]) -> str:
    shown = [h.badge(s) + str(counts[s]) for s in STATUS_ORDER if counts.get(s)]
    return " ".join(shown) if shown else '<span class="muted">none</span>'


def servers_page(
    servers: Sequence[ServerOverview],
    *,
    server_url: Callable[[int], str],
    nav: Mapping[str, str],
    now: datetime,
) -> str:
    """Every server with its current score and the monitors watching it."""
    rows = [
        [
            h.cell(h.link(server_url(s.id), s.ip)),
            h.text(s.hostname or ""),
            h.text(s.ip_version),
            h.score_cell(s.score_raw),
            h.text(h.age(s.score_ts, now) if s.score_ts else "not scored yet"),
            h.cell(_counts_markup(s.monitor_counts)),
            h.text("scheduled " + str(s.deletion_on) if s.deletion_on else ""),
        ]
        for s in servers
    ]
    body = h.table(
        ["Server", "Hostname", "IP", "Score", "Scored", "Monitors", "Deletion"],
        rows,
        empty="No servers yet. Add one with `monitor-api admin servers add`.",
    )
    return h.page("Servers", body, nav=nav, generated=now)


def monitor_colours(assignments: Sequence[Assignment], history: Sequence[HistoryPoint]) -> dict:
    """A stable colour per agent monitor, shared by both graphs of a server page."""
    ids = {a.monitor_id for a in assignments if a.monitor_type == MonitorType.MONITOR}
    ids |= {
        p.monitor_id
        for p in history
        if p.monitor_id is not None and p.monitor_type == MonitorType.MONITOR
    }
    return {monitor_id: PALETTE[i % len(PALETTE)] for i, monitor_id in enumerate(sorted(ids))}


def _grouped(history: Sequence[HistoryPoint]) -> dict[int | None, list[HistoryPoint]]:
    grouped: dict[int | None, list[HistoryPoint]] = {}
    for point in history:
        grouped.setdefault(point.monitor_id, []).append(point)
    return grouped


def current_standing(server: ServerOverview, assignments: Sequence[Assignment]) -> dict:
    """Each monitor's current score for the server (``server_scores``), the overall scorer's
    being the server's own score.

    The scorer skips a ``log_scores`` row identical to the previous one, so the history alone
    ends a point early: the graph's lines are extended to these values.
    """
    standing = {a.monitor_id: (a.score_ts, a.score_raw) for a in assignments if a.score_ts}
    for a in assignments:
        is_overall = (a.tls_name or "").split(".")[0] == OVERALL_SCORER
        if a.monitor_type == MonitorType.SCORE and is_overall and server.score_ts:
            standing[a.monitor_id] = (server.score_ts, server.score_raw)
    return standing


def score_series(
    history: Sequence[HistoryPoint],
    names: Mapping[int, str],
    colours: Mapping[int, str],
    standing: Standing | None = None,
) -> list[Series]:
    """Each monitor's running score for the server, then the scorers' scores (bold, on top);
    each line runs to the monitor's current score (``standing``) when that is newer."""
    scorers: list[Series] = []
    agents: list[Series] = []
    for monitor_id, points in sorted(_grouped(history).items(), key=lambda kv: kv[0] or 0):
        name = names.get(monitor_id, "unknown") if monitor_id is not None else "unknown"
        values = [(as_utc(p.ts), p.score) for p in points]
        current = (standing or {}).get(monitor_id) if monitor_id is not None else None
        if current is not None and as_utc(current[0]) > values[-1][0]:
            values.append((as_utc(current[0]), current[1]))
        if points[0].monitor_type == MonitorType.SCORE:
            algorithm = name.split(".")[0]  # recentmedian.scores.ntp.dev -> recentmedian
            colour, width = SCORER_STYLE.get(algorithm, ("#444444", 2.0))
            scorers.append(
                Series(name=f"score ({algorithm})", points=values, colour=colour, width=width)
            )
        else:
            colour = colours.get(monitor_id, "#444444") if monitor_id is not None else "#444444"
            agents.append(Series(name=name, points=values, colour=colour, width=1.2))
    scorers.sort(key=lambda s: s.name == f"score ({OVERALL_SCORER})")  # the overall one on top
    return agents + scorers


def offset_series(
    history: Sequence[HistoryPoint], names: Mapping[int, str], colours: Mapping[int, str]
) -> list[Series]:
    """Each monitor's measured offsets (monitor rows only; the scorers copy or drop them)."""
    out = []
    for monitor_id, points in sorted(_grouped(history).items(), key=lambda kv: kv[0] or 0):
        if monitor_id is None or points[0].monitor_type != MonitorType.MONITOR:
            continue
        values = [(as_utc(p.ts), p.offset) for p in points if p.offset is not None]
        if values:
            out.append(
                Series(
                    name=names.get(monitor_id, f"monitor {monitor_id}"),
                    points=values,
                    colour=colours.get(monitor_id, "#444444"),
                    width=1.2,
                    markers=True,
                )
            )
    return out


def _last_check(last: HistoryPoint | None) -> tuple[str, str]:
    """The offset and RTT columns: a check without an answer has neither (its RTT is stored
    as 0, which is no round trip time)."""
    if last is None:
        return "—", "—"
    if last.offset is None:
        return "no answer", "—"
    rtt = f"{last.rtt / 1000:.2f} ms" if last.rtt else "—"
    return h.milliseconds(last.offset), rtt


def _notes(constraint: str | None, pause_reason: str | None) -> str:
    note = constraint or ""
    return f"{note} paused: {pause_reason}".strip() if pause_reason else note


def _assignment_rows(
    assignments: Sequence[Assignment],
    latest: Mapping[int, HistoryPoint],
    now: datetime,
    monitor_url: Callable[[int], str],
) -> list[list[str]]:
    rows = []
    for a in assignments:
        offset, rtt = _last_check(latest.get(a.monitor_id))
        name = a.tls_name or f"monitor {a.monitor_id}"
        is_agent = a.monitor_type == MonitorType.MONITOR
        rows.append(
            [
                h.cell(h.link(monitor_url(a.monitor_id), name)) if is_agent else h.text(name),
                h.text(a.monitor_type),
                h.cell(h.badge(a.status)),
                h.score_cell(a.score_raw),
                h.text(h.age(a.score_ts, now) if a.score_ts else "never"),
                h.text(offset, css="num"),
                h.text(rtt),
                h.text(_notes(a.constraint_violation_type, a.pause_reason)),
            ]
        )
    return rows


def _no_offsets_note(history: Sequence[HistoryPoint], offsets: Sequence[Series]) -> str:
    """Why the offset graph is empty, when monitors did check the server."""
    checks = [p for p in history if p.monitor_type == MonitorType.MONITOR]
    if offsets or not checks:
        return ""
    return (
        f'<p class="muted">No offsets to draw: none of the {len(checks)} checks in this window '
        "got a usable answer (no response, or a kiss code such as DENY or RATE).</p>"
    )


def server_page(
    server: ServerOverview,
    assignments: Sequence[Assignment],
    history: Sequence[HistoryPoint],
    names: Mapping[int, str],
    *,
    start: datetime,
    now: datetime,
    nav: Mapping[str, str],
    monitor_url: Callable[[int], str],
    traces: Sequence[StoredTrace] = (),
) -> str:
    """One server: its score, the monitors assigned to it, two graphs over [start, now] and
    the latest traceroute of each monitor with how its path changed."""
    colours = monitor_colours(assignments, history)
    latest = {p.monitor_id: p for p in history if p.monitor_id is not None}
    scores = score_series(history, names, colours, current_standing(server, assignments))
    offsets = offset_series(history, names, colours)
    window = window_label(start, now)
    summary = (
        f'<p>Score <span class="{h.score_class(server.score_raw)}">{server.score_raw:.1f}</span>'
        f" · scored {h.age(server.score_ts, now) if server.score_ts else 'never'}"
        f" · {len(history)} measurements in the {window}</p>"
    )
    score_chart = time_chart(
        scores,
        title=f"Score, {window}",
        start=as_utc(start),
        end=as_utc(now),
        scale=score_scale([v for s in scores for _, v in s.points]),
        guide=h.SCORE_USABLE,
    )
    offset_chart = time_chart(
        offsets,
        title=f"Offset per monitor, {window} (symmetric log scale)",
        start=as_utc(start),
        end=as_utc(now),
        scale=offset_scale([v for s in offsets for _, v in s.points]),
        guide=0.0,
    )
    body = (
        summary
        + f'<figure id="score-graph">{score_chart}</figure><br>'
        + f'<figure id="offset-graph">{offset_chart}</figure>'
        + _no_offsets_note(history, offsets)
        + "<h2>Monitors</h2>"
        + h.table(
            ["Monitor", "Type", "Status", "Score", "Scored", "Last offset", "RTT", "Notes"],
            _assignment_rows(assignments, latest, now, monitor_url),
            empty="No monitors are assigned to this server yet.",
        )
        + traceroute_section(traces, now)
    )
    title = f"Server {server.ip}" + (f" ({server.hostname})" if server.hostname else "")
    return h.page(title, body, nav=nav, generated=now)


def _online_label(online: Mapping[str, bool], monitor: MonitorOverview) -> str:
    state = online.get(monitor.tls_name or "")
    return "unknown" if state is None else ("online" if state else "offline")


def _hop_markup(hop: Hop) -> str:
    """``3 192.0.2.1 0.42 ms`` (the best RTT), ``3 *`` for a gap; the destination in bold."""
    if hop.address is None:
        return f'<span class="muted">{hop.ttl} *</span>'
    rtts = [r for r in hop.rtts_us if r is not None]
    best = f" {min(rtts) / 1000:.2f} ms" if rtts else ""
    label = escape(hop.address) + (" (+" + str(len(hop.others)) + ")" if hop.others else "")
    shown = f"<b>{label}</b>" if hop.reached else label
    return f"{hop.ttl} {shown}{escape(best)}"


def path_markup(result: TraceResult) -> str:
    """The hops of one trace, one per line, and how it ended."""
    hops = "<br>".join(_hop_markup(hop) for hop in result.hops)
    end = "reached" if result.reached else f"not reached ({result.stop})"
    css = "good" if result.reached else "bad"
    return f'{hops}<br><span class="{css}">{escape(end)}</span>'


def change_markup(latest: TraceResult, previous: TraceResult | None) -> str:
    """How the path differs from the monitor's trace before (gaps alone are no change)."""
    if previous is None:
        return '<span class="muted">first trace</span>'
    changes = path_changes(previous.path(), latest.path())
    notes = [f"hop {c.ttl}: {escape(c.before or '*')} → {escape(c.after or '*')}" for c in changes]
    if latest.reached != previous.reached:
        notes.append("now reached" if latest.reached else "no longer reached")
    return "<br>".join(notes) if notes else '<span class="muted">same path</span>'


def traceroute_section(traces: Sequence[StoredTrace], now: datetime) -> str:
    """The latest trace per monitor (``traces`` newest first) and its change from the one before."""
    by_monitor: dict[int, list[StoredTrace]] = {}
    for stored in traces:
        by_monitor.setdefault(stored.monitor_id, []).append(stored)
    rows = []
    for runs in sorted(by_monitor.values(), key=lambda r: r[0].monitor_name):
        latest = runs[0]
        previous = runs[1].result if len(runs) > 1 else None
        rows.append(
            [
                h.text(latest.monitor_name),
                h.text(h.age(latest.ts, now)),
                h.text(latest.reason),
                h.cell(path_markup(latest.result)),
                h.cell(change_markup(latest.result, previous)),
                h.text(len(runs), css="num"),
            ]
        )
    return "<h2>Traceroutes</h2>" + h.table(
        ["Monitor", "When", "Why", "Latest path", "Change from the trace before", "Traces"],
        rows,
        empty="No traceroutes yet: monitors trace a server when its health changes.",
    )


def monitors_page(
    monitors: Sequence[MonitorOverview],
    *,
    online: Mapping[str, bool] | None,
    nav: Mapping[str, str],
    now: datetime,
    monitor_url: Callable[[int], str],
) -> str:
    """Every agent monitor; the online column appears only when MQTT tracking is available."""
    headers = ["Monitor", "IP", "Status", "Account", "Version", "Last seen", "Last submit"]
    if online is not None:
        headers.append("Online")
    headers.append("Servers")
    rows = []
    for m in monitors:
        row = [
            h.cell(h.link(monitor_url(m.id), m.tls_name or m.hostname)),
            h.text(m.ip),
            h.cell(h.badge(m.status)),
            h.text(m.account_name or (f"#{m.account_id}" if m.account_id else "")),
            h.text(m.client_version or "—"),
            h.text(h.age(m.last_seen, now)),
            h.text(h.age(m.last_submit, now)),
        ]
        if online is not None:
            row.append(h.cell(h.badge(_online_label(online, m))))
        row.append(h.cell(_counts_markup(m.server_counts)))
        rows.append(row)
    body = h.table(
        headers, rows, empty="No monitors yet. Agents appear here once registered and approved."
    )
    return h.page("Monitors", body, nav=nav, generated=now)


def monitor_page(
    monitor: MonitorOverview,
    assignments: Sequence[ServerAssignment],
    *,
    online: Mapping[str, bool] | None,
    nav: Mapping[str, str],
    now: datetime,
    server_url: Callable[[int], str],
) -> str:
    """One agent monitor: who and where it is, and its standing on every server it checks."""
    facts = [
        ("Status", h.badge(monitor.status)),
        ("IP", escape(monitor.ip or "")),
        (
            "Account",
            escape(
                monitor.account_name or (f"#{monitor.account_id}" if monitor.account_id else "—")
            ),
        ),
        ("Version", escape(monitor.client_version or "—")),
        ("Last seen", escape(h.age(monitor.last_seen, now))),
        ("Last submit", escape(h.age(monitor.last_submit, now))),
        ("Servers", _counts_markup(monitor.server_counts)),
    ]
    if online is not None:
        facts.insert(1, ("Online", h.badge(_online_label(online, monitor))))
    summary = "<p>" + " · ".join(f"{label} {value}" for label, value in facts) + "</p>"
    rows = [
        [
            h.cell(h.link(server_url(a.server_id), a.ip)),
            h.text(a.hostname or ""),
            h.cell(h.badge(a.status)),
            h.score_cell(a.score_raw),
            h.text(h.age(a.score_ts, now) if a.score_ts else "never"),
            h.text(_notes(a.constraint_violation_type, a.pause_reason)),
        ]
        for a in assignments
    ]
    body = summary + h.table(
        ["Server", "Hostname", "Status", "Score", "Scored", "Notes"],
        rows,
        empty="This monitor is not assigned to any server yet.",
    )
    return h.page(f"Monitor {monitor.tls_name or monitor.hostname}", body, nav=nav, generated=now)
