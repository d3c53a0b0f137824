"""The live terminal summary of the local stack, and the facts the end-to-end test checks.

Pure functions over query results and log text, so the same reading serves the terminal
and the test.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence

from ntpmon.db.pages import MonitorOverview, ServerOverview
from ntpmon.devtools.runstack.plan import Direction, ResponderSpec

SUBMITTED_MESSAGE = "batch submitted"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerState:
    """One demo server as the stack sees it now."""

    spec: ResponderSpec
    server_id: int | None
    score: float | None
    monitor_counts: Mapping[str, int]
    measurements: int

    @property
    def on_track(self) -> bool | None:
        """Whether the score has left zero in the expected direction (None: not scored yet)."""
        if self.score is None or self.measurements == 0:
            return None
        return moved_as_expected(self.spec.direction, self.score)


def moved_as_expected(direction: Direction, score: float, start: float = 0.0) -> bool:
    return score > start if direction is Direction.UP else score < start


def server_states(
    specs: Sequence[ResponderSpec],
    servers: Iterable[ServerOverview],
    counts: Mapping[tuple[int, int], int],
) -> list[ServerState]:
    """Join the demo servers (by address) with their rows and measurement counts."""
    by_ip = {s.ip: s for s in servers}
    states = []
    for spec in specs:
        row = by_ip.get(spec.address)
        measured = sum(n for (sid, _), n in counts.items() if row and sid == row.id)
        states.append(
            ServerState(
                spec=spec,
                server_id=row.id if row else None,
                score=row.score_raw if row else None,
                monitor_counts=row.monitor_counts if row else {},
                measurements=measured,
            )
        )
    return states


def submitted_results(log_text: str) -> int:
    """Results an agent reported as submitted, from its JSON log (``batch submitted``)."""
    total = 0
    for line in log_text.splitlines():
        if SUBMITTED_MESSAGE not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("msg") == SUBMITTED_MESSAGE:
            total += int(doc.get("count", 0))
    return total


def _mark(state: ServerState) -> str:
    return {True: "ok", False: "..", None: "--"}[state.on_track]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def render(
    states: Sequence[ServerState],
    monitors: Sequence[MonitorOverview],
    *,
    header: Sequence[str],
) -> str:
    """The summary block: header lines, one line per server, one per agent monitor."""
    lines = list(header)
    lines.append("")
    lines.append(
        f"{'server':<14}{'address':<14}{'expected':<24}{'score':>8}  {'dir':<4}"
        f"{'act/test/cand':<15}{'checks':>6}"
    )
    for s in states:
        c = s.monitor_counts
        monitors_text = f"{c.get('active', 0)}/{c.get('testing', 0)}/{c.get('candidate', 0)}"
        lines.append(
            f"{s.spec.name:<14}{s.spec.address:<14}{s.spec.expectation:<24}"
            f"{_score(s.score):>8}  {_mark(s):<4}{monitors_text:<15}{s.measurements:>6}"
        )
    lines.append("")
    lines.append(f"{'agent monitor':<48}{'ip':<14}{'status':<9}{'version':<14}{'last seen'}")
    for m in monitors:
        seen = m.last_seen.strftime("%H:%M:%S") if m.last_seen else "never"
        lines.append(
            f"{(m.tls_name or '?'):<48}{(m.ip or ''):<14}{m.status:<9}"
            f"{(m.client_version or '-'):<14}{seen}"
        )
    if not monitors:
        lines.append("(no agent registered yet)")
    return "\n".join(lines)
