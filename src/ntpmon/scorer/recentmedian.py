"""The ``recentmedian`` scorer (spec/scorer.md §6): the median of the monitors' latest scores.

Pure functions over rows. The candidate set of each input row is what query Q23 returns; the
runner loads, once per batch and look-back tier, every row Q23 could return for the batch
(``ntpmon.db.scorer.load_recent_window``) and :func:`recent_scores` picks each row's set
from that in memory.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ntpmon.db.models import LogScore
from ntpmon.scorer.errors import ScoringError
from ntpmon.scorer.score import Score, decode_attributes, encode_attributes

NAME = "recentmedian"
MAX_SPAN = timedelta(minutes=10)
"""A load covers servers whose batch rows lie within this span (a superset is always safe)."""
MAX_SERVERS_PER_LOAD = 2500
"""Servers per load: a 5,000-row batch of the whole pool is two or three loads per tier."""


class NoRecentScoresError(ScoringError):
    """No tier found any candidate row for the server."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One attempt: assignment statuses that count and how far back to look."""

    statuses: tuple[str, ...]
    lookback_s: int


TIERS: tuple[Tier, ...] = (
    Tier(("active",), 1200),
    Tier(("active", "testing"), 2700),
    Tier(("candidate", "testing"), 7200),  # not active (SQ7)
)


class ServerWindow:
    """Rows of one server, per monitor sorted by (ts, id), for repeated Q23 evaluation."""

    def __init__(self, rows: Iterable[LogScore]) -> None:
        per_monitor: dict[int | None, dict[int, LogScore]] = defaultdict(dict)
        for row in rows:
            per_monitor[row.monitor_id][row.id] = row  # the two loads may overlap
        self._rows = {
            m: sorted(r.values(), key=lambda x: (x.ts, x.id)) for m, r in per_monitor.items()
        }
        self._ts = {m: [r.ts for r in rows] for m, rows in self._rows.items()}

    def recent(self, ts: datetime, lookback_s: int) -> list[LogScore]:
        """Per monitor, its row(s) with the greatest ts in ``[ts - lookback, ts]``."""
        lo = ts - timedelta(seconds=lookback_s)
        found: list[LogScore] = []
        for monitor, rows in self._rows.items():
            times = self._ts[monitor]
            end = bisect_right(times, ts)
            if end == 0 or times[end - 1] < lo:
                continue
            latest = times[end - 1]
            start = end - 1
            while start > 0 and times[start - 1] == latest:
                start -= 1
            found.extend(rows[start:end])
        found.sort(key=lambda r: (r.ts, r.id))
        return found


def choose(candidates: Sequence[LogScore]) -> LogScore:
    """The representative row: the oldest of one or two (SQ8), else the lower median.

    With three or more rows: stable sort by (score, rtt) where a NULL rtt counts as 0, then
    index n//2 for odd n and n//2 - 1 for even n.
    """
    if not candidates:
        raise NoRecentScoresError("no candidates")
    n = len(candidates)
    if n < 3:
        return candidates[0]
    ordered = sorted(candidates, key=lambda r: (r.score, r.rtt or 0))
    return ordered[n // 2] if n % 2 else ordered[n // 2 - 1]


def median_score(ls: LogScore, chosen: LogScore, *, scorer_id: int, ss_id: int) -> Score:
    """The output row for input ``ls``; raises ``AttributesError`` on bad stored attributes."""
    attrs = decode_attributes(chosen.attributes)
    attrs["from_ls_id"] = ls.id
    attrs["from_ss_id"] = ss_id
    return Score(
        server_id=ls.server_id,
        monitor_id=scorer_id,
        ts=ls.ts,
        step=chosen.step,
        score=chosen.score,
        offset=None,
        rtt=None,
        attributes=encode_attributes(attrs),
    )


@dataclass(frozen=True, slots=True)
class WindowLoad:
    """One load request: these servers, every input ts within ``[first_ts, last_ts]``."""

    server_ids: tuple[int, ...]
    first_ts: datetime
    last_ts: datetime


def plan_loads(rows: Iterable[LogScore]) -> list[WindowLoad]:
    """Group servers with nearby input times so each load reads little beyond what is needed."""
    spans: dict[int, tuple[datetime, datetime]] = {}
    for row in rows:
        lo, hi = spans.get(row.server_id, (row.ts, row.ts))
        spans[row.server_id] = (min(lo, row.ts), max(hi, row.ts))
    loads: list[WindowLoad] = []
    group: list[int] = []
    first = last = None
    for server_id in sorted(spans, key=lambda s: (spans[s][0], s)):
        lo, hi = spans[server_id]
        if group and first is not None and last is not None:
            new_last = max(last, hi)
            if len(group) >= MAX_SERVERS_PER_LOAD or new_last - first > MAX_SPAN:
                loads.append(WindowLoad(tuple(group), first, last))
                group, first, last = [], None, None
        if not group:
            first, last = lo, hi
        group.append(server_id)
        last = max(last, hi) if last is not None else hi
    if group and first is not None and last is not None:
        loads.append(WindowLoad(tuple(group), first, last))
    return loads


Loader = Callable[[Tier, WindowLoad], list[LogScore]]


def resolve_candidates(rows: Sequence[LogScore], load: Loader) -> dict[int, list[LogScore]]:
    """Each input row's candidate set (first non-empty tier), keyed by input row id.

    Rows with no candidates in any tier are absent. A later tier is loaded only for the
    servers whose rows are still unresolved.
    """
    resolved: dict[int, list[LogScore]] = {}
    pending = list(rows)
    for tier in TIERS:
        if not pending:
            break
        windows: dict[int, list[LogScore]] = defaultdict(list)
        for request in plan_loads(pending):
            for row in load(tier, request):
                windows[row.server_id].append(row)
        by_server = {s: ServerWindow(r) for s, r in windows.items()}
        still: list[LogScore] = []
        for row in pending:
            window = by_server.get(row.server_id)
            found = window.recent(row.ts, tier.lookback_s) if window else []
            if found:
                resolved[row.id] = found
            else:
                still.append(row)
        pending = still
    return resolved
