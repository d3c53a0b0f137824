"""An injectable clock, so every time cut-off is computed in Python and tests control time.

The database never supplies the time (no ``NOW()`` in queries): the application clock is the
single source, which keeps MySQL, MariaDB and SQLite in step and makes tests deterministic.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = as_utc(when)

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def db_seconds(value: datetime) -> datetime:
    """Naive UTC truncated to whole seconds, for ``datetime(0)`` columns.

    MariaDB truncates fractional seconds while MySQL 8 rounds them; truncating in Python makes
    both (and SQLite) store the same value and keeps the monotonic guards predictable.
    """
    return as_utc(value).replace(tzinfo=None, microsecond=0)


def db_micros(value: datetime) -> datetime:
    """Naive UTC with microseconds, for the ``datetime(6)`` columns (last_seen, last_submit)."""
    return as_utc(value).replace(tzinfo=None)


def from_db(value: datetime | None) -> datetime | None:
    """Turn a naive UTC value read from the database into an aware UTC datetime."""
    if value is None:
        return None
    return as_utc(value)
