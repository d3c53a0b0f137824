"""The ``every`` scorer (spec/scorer.md §5): one decaying chain over all monitors' steps."""

from __future__ import annotations

import math

from ntpmon.db.models import LogScore
from ntpmon.scorer.score import Score
from ntpmon.scorer.statusscore import DECAY

NAME = "every"
FAR_OFFSET_NS = 3_000_000_000
FAR_OFFSET_SCORE = -20.0


def far_offset(offset: float | None) -> bool:
    """More than 3 s off, compared in integral nanoseconds as upstream's Duration does."""
    if offset is None:
        return False
    if not math.isfinite(offset):
        return True
    return abs(int(offset * 1e9)) > FAR_OFFSET_NS


def every_score(ls: LogScore, previous: float, *, scorer_id: int) -> Score:
    """``step + 0.95 * previous``; an offset beyond 3 s sets exactly -20 (SQ10: not a min)."""
    value = ls.step + previous * DECAY
    if far_offset(ls.offset):
        value = FAR_OFFSET_SCORE
    return Score(
        server_id=ls.server_id,
        monitor_id=scorer_id,
        ts=ls.ts,
        step=ls.step,
        score=value,
        offset=ls.offset,
        rtt=ls.rtt,
        attributes=ls.attributes,
    )
