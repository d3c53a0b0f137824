"""The scorer's run loop (spec/scorer.md §9): once, or as a service until SIGINT/SIGTERM.

After a run that scored something the next run starts at once (catch-up); an idle run sleeps
with a growing, jittered backoff. Connection errors back off and retry in service mode; any
other error ends the loop. Sleeps wait on a stop event, so a signal is honoured within a
moment and the batch in progress is finished (or rolled back) first.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from ntpmon.db.tx import is_connection_error
from ntpmon.scorer.errors import ScorerError
from ntpmon.scorer.runner import Runner

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with ±50 % jitter: ``initial``, ×1.5, capped at ``maximum``."""

    initial: float
    maximum: float
    multiplier: float = 1.5
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    _current: float = 0.0

    def next(self) -> float:
        base = self._current or self.initial
        self._current = min(base * self.multiplier, self.maximum)
        return base * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._current = 0.0


def idle_backoff() -> Backoff:
    return Backoff(initial=3.0, maximum=60.0)


def db_backoff() -> Backoff:
    return Backoff(initial=5.0, maximum=120.0)


def _describe(exc: DBAPIError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)


def serve(runner: Runner, *, once: bool, stop: threading.Event | None = None) -> int:
    """Run once or until ``stop`` is set; returns the rows processed. Errors raise ScorerError."""
    stop = stop if stop is not None else threading.Event()
    idle, db_wait = idle_backoff(), db_backoff()
    total = 0
    while not stop.is_set():
        try:
            count = runner.run(stop)
        except DBAPIError as exc:
            if is_connection_error(exc) and not once:
                delay = db_wait.next()
                log.error(
                    "database connection failed, retrying",
                    extra={"error": _describe(exc), "delay_s": round(delay, 2)},
                )
                stop.wait(delay)
                continue
            raise ScorerError(f"database error: {_describe(exc)}") from exc
        db_wait.reset()
        total += count
        if once:
            break
        if count == 0:
            stop.wait(idle.next())
        else:
            idle.reset()
    return total
