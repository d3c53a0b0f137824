"""Reviews of servers: one server (``process_server``), one batch, the endless loop, and the
dry run (spec/selector.md §1.1, §1.2). The pure engine decides; this module sequences I/O."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ntpmon.common.clock import Clock
from ntpmon.db.tx import is_retryable
from ntpmon.selector.constants import IDLE_BACKOFF_FIRST_S, IDLE_BACKOFF_MAX_S, REVIEW_BATCH
from ntpmon.selector.db import ApplyResult, SelectorStore, ServerInputs
from ntpmon.selector.metrics import SelectorMetrics
from ntpmon.selector.plan import plan_server
from ntpmon.selector.types import ServerPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerReview:
    """The outcome of reviewing one server."""

    server_id: int
    plan: ServerPlan | None
    result: ApplyResult | None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.result is not None and self.result.changed


def process_server(
    store: SelectorStore,
    server_id: int,
    now: datetime,
    metrics: SelectorMetrics | None = None,
    inputs: ServerInputs | None = None,
) -> ServerReview:
    """Load (unless the batch loaded ``inputs``), plan and write one server's review; errors
    propagate to the caller."""
    started = time.perf_counter()
    if inputs is None:
        inputs = ServerInputs(store.load_server(server_id), store.load_monitor_rows(server_id, now))
    server, rows = inputs.server, inputs.rows
    plan = plan_server(server, rows, now)
    result = store.apply_plan(plan, now)
    if metrics is not None:
        metrics.record_evaluation(server_id, plan.evaluated)
        names = {em.monitor.id: em.monitor for em in plan.evaluated}
        for change in result.applied:
            m = names.get(change.monitor_id)
            metrics.record_status_change(
                server_id, change, m.id_token if m else None, m.tls_name if m else None
            )
        metrics.record_applied(server_id, len(result.applied), len(result.failed))
        metrics.process_duration.observe(time.perf_counter() - started)
    log.info(
        "server reviewed",
        extra={
            "server": server_id,
            "monitors": len(plan.evaluated),
            "changes": len(result.applied),
            "failed": len(result.failed),
        },
    )
    return ServerReview(server_id, plan, result)


def review_batch(
    engine: Engine,
    clock: Clock,
    metrics: SelectorMetrics | None = None,
    *,
    limit: int = REVIEW_BATCH,
) -> list[ServerReview]:
    """One iteration: up to ``limit`` due servers in one transaction, each rescheduled.

    A server that fails is logged and rescheduled as unchanged (+20 min); a failure to
    reschedule, or an error that ends the transaction, rolls back the whole batch.
    """
    now = clock.now()
    reviews: list[ServerReview] = []
    changed: list[int] = []
    unchanged: list[int] = []
    with engine.begin() as conn:
        store = SelectorStore(conn)
        due = store.due_servers(now, limit)
        inputs = _load_batch(store, due, now)
        for server_id in due:
            try:
                review = process_server(store, server_id, now, metrics, inputs.get(server_id))
            except SQLAlchemyError as exc:
                if is_retryable(exc):
                    raise
                review = _failed(server_id, exc)
            except Exception as exc:  # a per-server error must not stop the batch (§1.2)
                review = _failed(server_id, exc)
            (changed if review.changed else unchanged).append(server_id)
            reviews.append(review)
        store.schedule_reviews(now, changed, unchanged)
    return reviews


def _load_batch(store: SelectorStore, due: list[int], now: datetime) -> dict[int, ServerInputs]:
    """The batch's inputs in one go; if that fails, each server loads its own (as before),
    so a load error still only fails the servers it concerns."""
    try:
        return store.load_inputs(due, now)
    except SQLAlchemyError as exc:
        if is_retryable(exc):
            raise
        log.error("batch load failed", extra={"servers": len(due), "error": _message(exc)})
        return {}


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__


def _failed(server_id: int, exc: BaseException) -> ServerReview:
    message = _message(exc)
    log.error("server review failed", extra={"server": server_id, "error": message})
    return ServerReview(server_id, None, None, message)


def review_one(
    engine: Engine, clock: Clock, server_id: int, metrics: SelectorMetrics | None = None
) -> ServerReview:
    """``selector once SERVER_ID``: that server now, due or not, in its own transaction."""
    now = clock.now()
    with engine.begin() as conn:
        store = SelectorStore(conn)
        review = process_server(store, server_id, now, metrics)
        store.schedule_review(server_id, now, review.changed)
    return review


def simulate(engine: Engine, clock: Clock, server_id: int) -> ServerPlan:
    """The plan for one server, computed from the database without writing anything."""
    now = clock.now()
    with engine.connect() as conn:
        store = SelectorStore(conn)
        try:
            return plan_server(
                store.load_server(server_id), store.load_monitor_rows(server_id, now), now
            )
        finally:
            conn.rollback()


@dataclass
class IdleBackoff:
    """Exponential, jittered sleep while no server is due (3 s up to 60 s)."""

    first: float = IDLE_BACKOFF_FIRST_S
    cap: float = IDLE_BACKOFF_MAX_S
    factor: float = 2.0
    jitter: float = 0.2
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def delay(self) -> float:
        self._next = self.first if self._next == 0.0 else min(self._next * self.factor, self.cap)
        return self._next * (1 + random.uniform(-self.jitter, self.jitter))


def run_loop(
    engine: Engine,
    clock: Clock,
    metrics: SelectorMetrics | None,
    stop: threading.Event,
    *,
    backoff: IdleBackoff | None = None,
    on_batch: Callable[[list[ServerReview]], None] | None = None,
) -> None:
    """Review due servers until ``stop`` is set; sleep with back-off when none is due."""
    backoff = backoff or IdleBackoff()
    while not stop.is_set():
        reviews = review_batch(engine, clock, metrics)
        if on_batch is not None:
            on_batch(reviews)
        if reviews:
            backoff.reset()
            continue
        stop.wait(backoff.delay())
