"""Transactions with a bounded retry on the errors that are safe to retry.

Only deadlock, lock-wait timeout, SQLite's "database is locked" and a lost connection are
retried, and always as the whole unit of work; anything else fails at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ntpmon.db.engine import mark_committed

log = logging.getLogger(__name__)
T = TypeVar("T")

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
CONNECTION_ERRNOS = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1053})


def _errno(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_deadlock(exc: BaseException) -> bool:
    """A conflict between transactions that a retry of the whole unit can resolve."""
    if _errno(exc) in (DEADLOCK, LOCK_WAIT_TIMEOUT):
        return True
    return "database is locked" in str(getattr(exc, "orig", exc))


def is_connection_error(exc: BaseException) -> bool:
    """The connection itself broke (server gone, restarted, too many connections)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if _errno(exc) in CONNECTION_ERRNOS:
        return True
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ == "InterfaceError"


def is_retryable(exc: BaseException) -> bool:
    return is_deadlock(exc) or is_connection_error(exc)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff; the defaults are the scorer's (spec/database.md §4.3)."""

    initial: float = 5.0
    factor: float = 1.5
    max_interval: float = 60.0
    max_elapsed: float = 600.0
    jitter: float = 0.5

    def delays(self) -> list[float]:
        """The sleeps before each retry, without jitter; their sum stays within max_elapsed."""
        out: list[float] = []
        delay, total = self.initial, 0.0
        while total + delay <= self.max_elapsed:
            out.append(delay)
            total += delay
            delay = min(delay * self.factor, self.max_interval)
        return out


QUICK_RETRY = RetryPolicy(initial=0.05, factor=2.0, max_interval=1.0, max_elapsed=10.0)


def run_in_tx(
    engine: Engine,
    fn: Callable[[Connection], T],
    *,
    policy: RetryPolicy = QUICK_RETRY,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Run ``fn`` in one transaction; on a retryable error roll back and run it again.

    ``on_retry`` lets callers restore in-memory state the failed attempt touched.
    """
    delays = policy.delays()
    attempt = 0
    while True:
        try:
            with engine.connect() as conn:
                with conn.begin():
                    result = fn(conn)
                mark_committed(conn)  # the pool need not roll a committed connection back
                return result
        except DBAPIError as exc:
            if not retry_on(exc) or attempt >= len(delays):
                raise
            delay = delays[attempt] * (1 + random.uniform(-policy.jitter, policy.jitter) / 2)
            attempt += 1
            log.warning(
                "transaction failed, retrying",
                extra={
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "error": str(exc.orig).splitlines()[0],
                },
            )
            if on_retry is not None:
                on_retry(exc, attempt)
            sleep(delay)
