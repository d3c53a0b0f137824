"""Whole ``log_scores`` rows by id, kept between batches by one scorer process.

recentmedian needs about ten candidate rows per input row, and most of them were read by
an earlier batch (as input rows or candidates). Rows are never changed once written, so a
cached row equals the stored one. Which rows a batch needs is always decided from the
database inside the batch transaction; the cache only saves reading the same row twice, so
a row deleted meanwhile is never used and the scores are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

from ntpmon.db.models import LogScore

DEFAULT_CAPACITY = 120_000
"""About 20 minutes of the whole pool's monitor rows (~40 MB): the last row of every pair."""


class RowCache(Mapping[int, LogScore]):
    """A bounded id → row map; the rows remembered first are dropped first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self.capacity = capacity
        self._rows: dict[int, LogScore] = {}
        self.batch_high = 0
        """The greatest id of a batch's input rows remembered: up to it, another scorer's
        next rows are probably here already."""

    def __getitem__(self, row_id: int) -> LogScore:
        return self._rows[row_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def remember(self, rows: Iterable[LogScore], *, batch: bool = False) -> None:
        """Keep these rows; beyond the capacity the oldest entries go.

        ``batch``: these are a batch's input rows (all monitor rows of an id range).
        """
        cache = self._rows
        high = 0
        for row in rows:
            cache.setdefault(row.id, row)
            high = max(high, row.id)
        if batch and self.capacity:
            self.batch_high = max(self.batch_high, high)
        excess = len(cache) - self.capacity
        if excess > 0:
            for row_id in list(islice(cache, excess)):
                del cache[row_id]
