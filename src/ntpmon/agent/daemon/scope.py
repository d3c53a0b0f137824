"""Cancellation scopes for the agent's threads.

A scope is cancelled once (shutdown, a failed sibling task, the end of a gate); child scopes and
registered callbacks follow it, so any blocking wait can be woken without polling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Scope:
    """A cancellable context; ``sleep`` returns early (False) when the scope is cancelled."""

    def __init__(self, parent: Scope | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._detach: Callable[[], None] | None = None
        if parent is not None:
            self._detach = parent.on_cancel(self.cancel)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel this scope and everything attached to it (idempotent)."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()

    def close(self) -> None:
        """Detach from the parent (a finished child must not stay registered)."""
        if self._detach is not None:
            self._detach()
            self._detach = None

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` on cancellation (at once if already cancelled); returns a remover."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback
                return lambda: self._remove(key)
        callback()
        return lambda: None

    def _remove(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the time passed, False when cancelled first."""
        return not self._event.wait(max(0.0, seconds))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for cancellation; True when cancelled."""
        return self._event.wait(timeout)


class Cancelled(Exception):  # noqa: N818 - reads as what happened
    """The surrounding scope was cancelled while waiting."""
