"""Jittered exponential back-off (agent.md: start a, ×1.5 per step, capped at b, ±r jitter).

Pure arithmetic with an injectable random source, so schedules are testable without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable

MULTIPLIER = 1.5


class Backoff:
    """Successive delays a, 1.5a, 2.25a … ≤ cap, each drawn from [d(1−r), d(1+r)]."""

    def __init__(
        self,
        initial: float,
        cap: float,
        *,
        jitter: float = 0.1,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._rand = rand
        self._current = initial

    def reset(self) -> None:
        self._current = self.initial

    def next_delay(self) -> float:
        """The next delay in seconds (jittered), advancing the schedule."""
        base = self._current
        self._current = min(self._current * MULTIPLIER, self.cap)
        return base * (1 - self.jitter + 2 * self.jitter * self._rand())
