"""Run a blocking agent task in a thread for the length of a ``with`` block, then cancel it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ntpmon.agent.daemon.scope import Scope


@contextmanager
def in_thread(task: Callable[[Scope], object], *, settle: float = 0.0) -> Iterator[Scope]:
    """``task(scope)`` runs until the block ends; it must stop promptly and must not raise."""
    scope = Scope()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            task(scope)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(settle)
    try:
        yield scope
    finally:
        scope.cancel()
        thread.join(15)
        assert not thread.is_alive()
    assert not errors, errors


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``predicate()`` holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
