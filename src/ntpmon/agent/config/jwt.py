"""Cache of the short-lived JWT used for monitor-API calls (agent.md §6.3).

Refreshes are single-flight: concurrent callers wait for one fetch instead of each fetching.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

REFRESH_MARGIN = 300.0


class TokenCache:
    """Holds one token and its expiry; ``fetch`` returns (token, lifetime seconds)."""

    def __init__(
        self,
        fetch: Callable[[], tuple[str, int]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def needs_refresh(self) -> bool:
        """Empty, or at most five minutes left."""
        return not self._token or self._expires - self._clock() <= REFRESH_MARGIN

    def clear(self) -> None:
        with self._lock:
            self._token, self._expires = "", 0.0

    def get(self) -> str:
        """The cached token, fetched first when it needs a refresh (errors propagate)."""
        if not self.needs_refresh():
            return self._token
        with self._lock:
            if self.needs_refresh():
                token, lifetime = self._fetch()
                self._token, self._expires = token, self._clock() + lifetime
            return self._token
