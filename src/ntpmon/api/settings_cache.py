"""A short-lived cache of the rows every GetServers would otherwise read again.

The ``monitors`` system setting and the ``settings-v4/v6.system`` defaults change rarely (an
operator edits them), yet each GetServers read both. Caching them for a few seconds removes two
statements per call; an edit takes effect within ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values computed by a loader, reused for ``ttl`` seconds (0 disables caching)."""

    def __init__(self, ttl: float, now: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._now = now
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        if self._ttl <= 0:
            return load()
        now = self._now()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        value = load()
        with self._lock:
            self._entries[key] = (now, value)
        return value
