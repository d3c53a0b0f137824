"""One scorer run (spec/scorer.md §7): at most one batch per configured scorer.

Each batch is one transaction: lock and read the cursor, fetch the next monitor rows, score
them in id order, write the scorer's rows, advance the cursor, commit. The per-row logic is
pure; the database is read once per batch (own ``server_scores`` rows, recentmedian's
candidate rows) and written with a few set-based statements whose final state equals
upstream's row-at-a-time statements.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ntpmon.common.clock import Clock, SystemClock, as_utc
from ntpmon.db import scorer as q
from ntpmon.db.common import get_system_setting, insert_log_scores, log_score_values
from ntpmon.db.models import LogScore, ServerScoreStatus
from ntpmon.db.tx import DEADLOCK, LOCK_WAIT_TIMEOUT, RetryPolicy, is_deadlock, run_in_tx
from ntpmon.scorer.errors import BatchError, NoScorersError, ScoringError
from ntpmon.scorer.history import ScoreHistory, StagedHistory
from ntpmon.scorer.metrics import ScorerMetrics
from ntpmon.scorer.registry import ConfiguredScorer, configured_scorers
from ntpmon.scorer.rowcache import DEFAULT_CAPACITY, RowCache
from ntpmon.scorer.score import Score

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 50
NEW_SCORE_RAW = -5.0
SKIP_OLDER_THAN = timedelta(hours=3)
SCORER_RETRY = RetryPolicy()  # 5 s, x1.5, at most 60 s apart, give up after 10 min


def batch_size_from_setting(value: str | None) -> tuple[int, str | None]:
    """``system_settings['scorer']`` → (batch size, warning or None); 50 unless a positive int."""
    if value is None:
        return DEFAULT_BATCH_SIZE, "no scorer settings, using the default batch size"
    try:
        doc = json.loads(value)
    except ValueError:
        return DEFAULT_BATCH_SIZE, "unparsable scorer settings, using the default batch size"
    size = doc.get("batch_size") if isinstance(doc, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        return DEFAULT_BATCH_SIZE, None
    return size, None


def retry_reason(exc: BaseException) -> str:
    """The ``reason`` label of a retried batch: deadlock, lock_wait_timeout, locked, connection."""
    errno = getattr(getattr(exc, "orig", exc), "args", (None,))[0]
    if errno == DEADLOCK:
        return "deadlock"
    if errno == LOCK_WAIT_TIMEOUT:
        return "lock_wait_timeout"
    return "locked" if is_deadlock(exc) else "connection"


def fetch_batch(
    conn: Connection,
    cursor: int,
    limit: int,
    agents: Sequence[int] | None = None,
    cache: RowCache | None = None,
) -> list[LogScore]:
    """Q21, and after an empty window Q22 + Q21 from just before the next row (SQ2 fixed).

    When another scorer has just read the rows after ``cursor`` (they are in ``cache``),
    Q21 reads only ids and the rows come from the cache; the same rows either way.
    """

    def read(after: int) -> list[LogScore]:
        if cache is None or cache.batch_high <= after:
            return q.get_scorer_log_scores(conn, log_score_id=after, limit=limit, agents=agents)
        ids = q.get_scorer_log_score_ids(conn, log_score_id=after, limit=limit, agents=agents)
        return sorted(q.get_log_scores_by_id(conn, ids, cache), key=lambda r: r.id)

    rows = read(cursor)
    if rows:
        return rows
    next_id = q.get_scorer_next_log_score_id(conn, log_score_id=cursor, agents=agents)
    if next_id is None:
        return []
    return read(next_id - 1)


@dataclass(frozen=True, slots=True)
class BatchResult:
    count: int
    last_id: int | None
    written: int
    staged: StagedHistory


@dataclass(slots=True)
class _Writes:
    """What a batch writes, collected while scoring and flushed at its end."""

    outputs: list[Score]
    server_scores: dict[int, tuple[datetime, float]]
    servers: dict[int, tuple[datetime, float]]
    scored: int = 0


def own_server_scores(
    conn: Connection,
    scorer: ConfiguredScorer,
    server_ids: set[int],
    now: datetime,
    metrics: ScorerMetrics,
) -> dict[int, q.OwnScore]:
    """Get or create (at -5) the scorer's rows for these servers and make them all active."""
    own = q.get_server_scores_for_servers(conn, monitor_id=scorer.scorer_id, server_ids=server_ids)
    missing = server_ids - own.keys()
    if missing:
        q.insert_server_scores(
            conn,
            monitor_id=scorer.scorer_id,
            server_ids=missing,
            score_raw=NEW_SCORE_RAW,
            created_on=now,
        )
        metrics.sql("insert_server_score", len(missing))
        own.update(
            q.get_server_scores_for_servers(conn, monitor_id=scorer.scorer_id, server_ids=missing)
        )
    inactive = [s for s, ss in own.items() if ss.status != ServerScoreStatus.ACTIVE]
    if inactive:
        q.activate_server_scores(conn, monitor_id=scorer.scorer_id, server_ids=inactive)
        metrics.sql("update_server_score_status", len(inactive))
    return own


def score_rows(
    scorer: ConfiguredScorer,
    rows: Sequence[LogScore],
    own: dict[int, q.OwnScore],
    prepared: object,
    *,
    staged: StagedHistory,
    now: datetime,
) -> _Writes:
    """Score the batch in id order (pure): chains, dedup, the 3-hour rule, forward-only servers."""
    algorithm = scorer.algorithm
    writes = _Writes([], {}, {})
    running = {server_id: ss.score_raw for server_id, ss in own.items()}
    too_old = now - SKIP_OLDER_THAN
    for ls in rows:
        ss = own[ls.server_id]
        try:
            result = algorithm.score(
                prepared,
                ls,
                scorer_id=scorer.scorer_id,
                ss_id=ss.id,
                previous=running[ls.server_id],
            )
        except ScoringError as exc:
            if ls.ts < too_old:
                log.warning(
                    "could not calculate score, skipping old entry",
                    extra={
                        "scorer": scorer.name,
                        "server_id": ls.server_id,
                        "log_score_id": ls.id,
                        "ts": ls.ts.isoformat(sep=" "),
                        "error": str(exc),
                    },
                )
                continue
            raise BatchError(f'scorer "{scorer.name}": {exc}') from exc
        if staged.is_new(ls.server_id, ls.ts, ls.score):  # the input row's values (SQ1)
            writes.outputs.append(result)
        writes.scored += 1
        running[ls.server_id] = result.score
        writes.server_scores[ss.id] = (result.ts, result.score)
        if algorithm.updates_servers:
            best = writes.servers.get(ls.server_id)
            if best is None or result.ts > best[0]:
                writes.servers[ls.server_id] = (result.ts, result.score)
    return writes


def process_batch(
    conn: Connection,
    scorer: ConfiguredScorer,
    *,
    limit: int,
    staged: StagedHistory,
    now: datetime,
    metrics: ScorerMetrics,
    cache: RowCache | None = None,
) -> BatchResult:
    """One batch inside the caller's transaction; the cursor is locked first (§8).

    ``cache`` (rows read by earlier batches, see ``ntpmon.scorer.rowcache``) saves reads only;
    the batch's rows and scores are the same without it.
    """
    cursor = q.lock_scorer_status(conn, scorer_id=scorer.scorer_id)
    if cursor is None:
        return BatchResult(0, None, 0, staged)
    agents = q.get_agent_monitor_ids(conn)
    rows = fetch_batch(conn, cursor, limit, agents, cache)
    if not rows:
        return BatchResult(0, None, 0, staged)
    if cache is not None:
        cache.remember(rows, batch=True)
    own = own_server_scores(conn, scorer, {r.server_id for r in rows}, now, metrics)
    prepared = scorer.algorithm.prepare(conn, rows, agents, cache)
    writes = score_rows(scorer, rows, own, prepared, staged=staged, now=now)
    insert_log_scores(conn, [log_score_values(**_score_values(s)) for s in writes.outputs])
    metrics.sql("insert_log_score", len(writes.outputs))
    q.update_server_scores_bulk(conn, writes.server_scores)
    metrics.sql("update_server_score", writes.scored)
    if writes.servers:
        q.update_servers_bulk(conn, writes.servers)
        metrics.sql("update_server", writes.scored)
    q.update_scorer_status(conn, scorer_id=scorer.scorer_id, log_score_id=rows[-1].id)
    metrics.sql("update_scorer_status")
    return BatchResult(len(rows), rows[-1].id, len(writes.outputs), staged)


def _score_values(score: Score) -> dict[str, object]:
    return {
        "server_id": score.server_id,
        "monitor_id": score.monitor_id,
        "ts": score.ts,
        "score": score.score,
        "step": score.step,
        "offset": score.offset,
        "rtt": score.rtt,
        "attributes": score.attributes,
    }


class Runner:
    """Runs the configured scorers; keeps each scorer's dedup memory across runs."""

    def __init__(
        self,
        engine: Engine,
        *,
        metrics: ScorerMetrics | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy = SCORER_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        row_cache_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.engine = engine
        self.metrics = metrics if metrics is not None else ScorerMetrics()
        self.clock = clock if clock is not None else SystemClock()
        self.retry = retry
        self.sleep = sleep
        self._histories: dict[str, ScoreHistory] = {}
        self._rows = RowCache(row_cache_capacity)
        self._last_warning: str | None = None

    def batch_size(self) -> int:
        """The ``scorer`` setting's batch size, read every run so a change applies at once.

        A warning about the setting is logged when it first appears or changes, not on every
        run: ``scorer server`` runs every few seconds, and a database without the (optional)
        setting would otherwise log the same line forever.
        """
        with self.engine.begin() as conn:
            value = get_system_setting(conn, key="scorer")
        size, warning = batch_size_from_setting(value)
        if warning and warning != self._last_warning:
            log.warning(warning, extra={"batch_size": size})
        self._last_warning = warning
        return size

    def scorers(self) -> list[ConfiguredScorer]:
        with self.engine.begin() as conn:
            return configured_scorers(q.get_scorers(conn))

    def run(self, stop: threading.Event | None = None) -> int:
        """One run: at most one batch per scorer; returns the input rows processed.

        A set ``stop`` event keeps the remaining scorers of this run from starting a batch.
        """
        self.metrics.plain.add_run()
        try:
            batch_size = self.batch_size()
            scorers = self.scorers()
        except DBAPIError:
            self.metrics.plain.add_error()
            raise
        if not scorers:
            raise NoScorersError("no scorers configured")
        total = 0
        for scorer in scorers:
            if stop is not None and stop.is_set():
                break
            try:
                count = self.run_scorer(scorer, batch_size)
            except Exception:
                self.metrics.plain.add_error()
                raise
            self.metrics.plain.add_processed(scorer.name, count)
            total += count
        return total

    def run_scorer(self, scorer: ConfiguredScorer, batch_size: int) -> int:
        """One batch of one scorer, retried as a whole on deadlocks and lost connections."""
        history = self._histories.setdefault(scorer.name, ScoreHistory())
        started = time.monotonic()

        def attempt(conn: Connection) -> BatchResult:
            now = as_utc(self.clock.now()).replace(tzinfo=None)
            return process_batch(
                conn,
                scorer,
                limit=batch_size,
                staged=history.stage(),
                now=now,
                metrics=self.metrics,
                cache=self._rows,
            )

        def on_retry(exc: BaseException, attempt_no: int) -> None:
            reason = retry_reason(exc)
            if reason == "deadlock":
                self.metrics.deadlocks.inc()
            self.metrics.retries.labels(scorer=scorer.name, reason=reason).inc()
            log.warning(
                "batch rolled back, retrying",
                extra={"scorer": scorer.name, "reason": reason, "attempt": attempt_no},
            )

        result = run_in_tx(
            self.engine, attempt, policy=self.retry, sleep=self.sleep, on_retry=on_retry
        )
        history.apply(result.staged)  # only after COMMIT (SQ5 fixed)
        if result.count:
            elapsed = time.monotonic() - started
            self.metrics.batch_duration.labels(scorer=scorer.name).observe(elapsed)
            self.metrics.batch_size.labels(scorer=scorer.name).observe(result.count)
            log.info(
                "batch scored",
                extra={
                    "scorer": scorer.name,
                    "count": result.count,
                    "written": result.written,
                    "last_id": result.last_id,
                    "duration_s": round(elapsed, 3),
                },
            )
        return result.count
