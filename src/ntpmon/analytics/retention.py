"""Delete old ``log_scores`` rows in small primary-key ranges, never an unprocessed one.

Rows go oldest id first, and only while they are older than the cut-off: the table keeps a
contiguous tail of ids, so "below the lowest id MySQL still has" means "deleted" (the status
pages rely on that to know what to read from ClickHouse). A row is eligible only below the
lowest scorer cursor (that row itself stays: ``scorer_status`` has a foreign key to it) and,
once the exporter has a cursor, at or below the exporter's cursor. No scorer configured means
nothing is known to be scored, so nothing is deleted.

Each batch is one short transaction: ``DELETE ... WHERE id BETWEEN a AND b AND ts < cutoff``
over at most ``batch_size`` rows just read by key, so no statement locks more than that range.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine

from ntpmon.analytics.metrics import AnalyticsMetrics
from ntpmon.common.clock import Clock, SystemClock, as_utc, db_seconds
from ntpmon.db import analytics as q
from ntpmon.db.clickhouse import LOG_SCORES
from ntpmon.db.pages import DATABASE_HISTORY

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = DATABASE_HISTORY
MIN_MAX_AGE = timedelta(hours=24)
"""The selector's aggregate reads 24 hours (and recentmedian 2 hours) of log_scores."""
DEFAULT_BATCH_SIZE = 1000
"""Rows per DELETE: bench/retention.py measured 75 ms for the longest at 1,000, 179 ms at 2,000."""


@dataclasses.dataclass(frozen=True, slots=True)
class PruneResult:
    """What one run did (or, dry, would have done)."""

    deleted: int
    statements: int
    longest_statement_s: float
    bound: int | None
    """Ids at or above this were off limits (None: nothing is, no scorer)."""
    reason: str
    """Why the run ended: ``done`` (young rows, the bound), ``no scorers`` or ``stopped``."""


def parse_age(text: str) -> timedelta:
    """``14d``, ``36h``, ``90m``, ``3600s`` or plain seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    raw = text.strip().lower()
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"age must look like 14d, 36h, 90m or 3600s, got {text!r}") from None
    return timedelta(seconds=value * factor)


class Pruner:
    """Retention for ``log_scores``; one instance per process."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pause: float = 0.0,
        metrics: AnalyticsMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_age < MIN_MAX_AGE:
            raise ValueError(f"max age must be at least {MIN_MAX_AGE} (the selector reads 24 h)")
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.engine = engine
        self.max_age = max_age
        self.batch_size = batch_size
        self.pause = pause
        self.metrics = metrics or AnalyticsMetrics()
        self.clock = clock or SystemClock()

    def bound(self) -> int | None:
        """Ids below this may go; None when no scorer has a cursor."""
        with self.engine.connect() as conn:
            floor = q.scorer_cursor_floor(conn)
            exported = q.get_export_cursor(conn, LOG_SCORES.name)
        if floor is None:
            return None
        return int(floor) if exported is None else min(int(floor), int(exported) + 1)

    def run(self, *, dry_run: bool = False, stop: threading.Event | None = None) -> PruneResult:
        """Delete (or count, ``dry_run``) every eligible row, batch by batch."""
        now = self.clock.now()
        cutoff = db_seconds(now - self.max_age)
        bound = self.bound()
        if bound is None:
            log.warning("retention: no scorer cursor, nothing is known to be scored")
            return PruneResult(0, 0, 0.0, None, "no scorers")
        self.metrics.safe_bound.set(bound)
        after, deleted, statements, longest, reason = -1, 0, 0, 0.0, "done"
        while True:
            if stop is not None and stop.is_set():
                reason = "stopped"
                break
            with self.engine.connect() as conn:
                rows = q.log_score_ids_and_ts(
                    conn, after_id=after, below_id=bound, limit=self.batch_size
                )
            old = [row_id for row_id, ts in rows if ts < cutoff]
            prefix = old[: next((i for i, (_, ts) in enumerate(rows) if ts >= cutoff), len(rows))]
            if not prefix:
                break
            if dry_run:
                deleted += len(prefix)
            else:
                started = time.perf_counter()
                with self.engine.begin() as conn:
                    deleted += q.delete_log_scores_between(
                        conn, first_id=prefix[0], last_id=prefix[-1], before=cutoff
                    )
                took = time.perf_counter() - started
                statements += 1
                longest = max(longest, took)
                self.metrics.delete_statements.inc()
                self.metrics.delete_seconds.observe(took)
            after = prefix[-1]
            if len(prefix) < len(rows) or len(rows) < self.batch_size:
                break  # reached a young row, the bound or the end of the table
            if self.pause and stop is not None:
                stop.wait(self.pause)
            elif self.pause:
                time.sleep(self.pause)
        if not dry_run:
            self.metrics.deleted_rows.inc(deleted)
        self.metrics.eligible_rows.set(deleted)
        self._oldest_age(now)
        log.info(
            "retention finished",
            extra={
                "dry_run": dry_run,
                "rows": deleted,
                "statements": statements,
                "longest_ms": round(longest * 1000, 1),
                "bound": bound,
                "cutoff": cutoff.isoformat(),
            },
        )
        return PruneResult(deleted, statements, longest, bound, reason)

    def _oldest_age(self, now: datetime) -> None:
        with self.engine.connect() as conn:
            oldest = q.oldest_log_score(conn)
        age = 0.0 if oldest is None else (now - as_utc(oldest[1])).total_seconds()
        self.metrics.oldest_age.set(max(0.0, age))
