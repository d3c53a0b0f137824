"""Suppression of repeated scorer output rows ("IsNew", spec/scorer.md §7.5).

The memory is process-local and keyed by server. A batch works on a :class:`StagedHistory`
and its decisions reach the shared memory only after the batch commits (SQ5 fixed), so a
rolled-back or retried batch never makes later rows look like repeats.
"""

from __future__ import annotations

from datetime import datetime, timedelta

UNCHANGED_FOR = timedelta(minutes=15)
SIMILAR_FOR = timedelta(minutes=5)
EQUAL_EPSILON = 1e-12
SIMILAR_FRACTION = 0.05


def close(new: float, last: float) -> bool:
    """Within 5 % of the last score (a zero on one side needs exact equality to 1e-12)."""
    if new == 0 and last == 0:
        return True
    if new == 0 or last == 0:
        return abs(new - last) <= EQUAL_EPSILON
    return abs(new - last) <= abs(last) * SIMILAR_FRACTION


def is_new_against(last: tuple[datetime, float] | None, ts: datetime, score: float) -> bool:
    """The pure decision: is ``(ts, score)`` worth a row, given the last row written?"""
    if last is None:
        return True
    last_ts, last_score = last
    if ts < last_ts:
        return False
    if abs(score - last_score) <= EQUAL_EPSILON and last_ts + UNCHANGED_FOR > ts:
        return False
    return not (close(score, last_score) and last_ts + SIMILAR_FOR > ts)


class ScoreHistory:
    """The last written (ts, score) per server for one scorer."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[datetime, float]] = {}

    def last(self, server_id: int) -> tuple[datetime, float] | None:
        return self._last.get(server_id)

    def is_new(self, server_id: int, ts: datetime, score: float) -> bool:
        """Decide and remember at once (for callers outside a transaction)."""
        if not is_new_against(self._last.get(server_id), ts, score):
            return False
        self._last[server_id] = (ts, score)
        return True

    def stage(self) -> StagedHistory:
        return StagedHistory(self)

    def apply(self, staged: StagedHistory) -> None:
        self._last.update(staged.changes)


class StagedHistory:
    """Decisions of one batch on top of the shared memory, applied only after COMMIT."""

    def __init__(self, base: ScoreHistory) -> None:
        self._base = base
        self.changes: dict[int, tuple[datetime, float]] = {}

    def is_new(self, server_id: int, ts: datetime, score: float) -> bool:
        last = self.changes.get(server_id) or self._base.last(server_id)
        if not is_new_against(last, ts, score):
            return False
        self.changes[server_id] = (ts, score)
        return True
