"""Which RPC runs next: a few handler threads that take waiting calls SubmitResults first.

Every RPC is mostly Python CPU under the GIL plus database round trips, so beyond a few calls
at once more concurrency buys nothing but GIL hand-offs and context switches: measured with 50
busy agents on 2 cores, the server spent 2.8 ms of CPU per GetServers + SubmitResults pair
with 8 handler threads and 4.5 ms with 64, whether or not the 64 ran at once. A plain thread
pool serves calls first come, first served; this module is a handful of threads that pick the
most urgent waiting call instead.

Which call is most urgent is the point. A SubmitResults carries measurements that were already
made and that the agent holds until they are accepted; a GetServers only hands out new work.
Under load, submissions go first, then GetConfig, then GetServers, so finished work is recorded
promptly and the overload shows up as agents starting their next batch later (back-pressure),
not as slow or timed-out submissions. Submissions cannot starve the other calls: an agent
submits at most one batch per GetServers. Within one priority calls run in arrival order.

The RPC listener's event loop files each call here (:meth:`PriorityScheduler.submit`) and
awaits its future, whatever protocol carried it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from enum import IntEnum
from typing import Any

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    SUBMIT = 0
    CONFIG = 1
    WORK = 2


Observer = Callable[[str, float], None]
"""Told (lane label, seconds waited) as each call starts: the queue-wait metric."""

_Item = tuple[
    int, int, float, str, Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]
]


class PriorityScheduler:
    """``threads`` worker threads running filed calls by (priority, arrival)."""

    def __init__(self, threads: int, name: str = "grpc", observe: Observer | None = None) -> None:
        if threads < 1:
            raise ValueError("a scheduler needs at least one thread")
        self._observe = observe
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Item] = []
        self._order = itertools.count()
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    @property
    def waiting(self) -> int:
        """Calls filed and not yet started (for tests and metrics)."""
        with self._cond:
            return len(self._queue)

    def submit(
        self,
        priority: Priority,
        label: str,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Future[Any]:
        future: Future[Any] = Future()
        item = (priority, next(self._order), time.monotonic(), label, future, fn, args, kwargs)
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            heapq.heappush(self._queue, item)
            self._cond.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                _, _, filed, label, future, fn, args, kwargs = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            if self._observe is not None:
                try:
                    self._observe(label, time.monotonic() - filed)
                except Exception:  # a metric must never take a handler thread down
                    log.exception("queue-wait observer failed", extra={"method": label})
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the future, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True) -> None:
        """Run what is filed, then stop the threads; no new calls are taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()
