"""The priority scheduler behind the gRPC handlers: at most ``threads`` calls at once, the most
urgent waiting call next, arrival order within one priority, results and errors through the
futures grpcio waits on, and a clean shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from ntpmon.api.admission import Priority, PriorityScheduler


def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def _order_behind_a_busy_thread(calls: list[tuple[str, Priority]]) -> list[str]:
    """One thread, kept busy while ``calls`` are filed in the given order: the order they ran."""
    scheduler = PriorityScheduler(1)
    release = threading.Event()
    order: list[str] = []
    blocker = scheduler.submit(Priority.WORK, "block", release.wait, 5)
    _wait_until(lambda: scheduler.waiting == 0)  # the blocker runs, nothing else can
    futures = [scheduler.submit(p, name, order.append, name) for name, p in calls]
    release.set()
    for future in [blocker, *futures]:
        future.result(timeout=5)
    scheduler.shutdown()
    return order


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # submissions overtake everything, GetConfig overtakes GetServers
        (
            [("work", Priority.WORK), ("config", Priority.CONFIG), ("submit", Priority.SUBMIT)],
            ["submit", "config", "work"],
        ),
        # first come, first served within one priority
        (
            [("submit-1", Priority.SUBMIT), ("submit-2", Priority.SUBMIT), ("w", Priority.WORK)],
            ["submit-1", "submit-2", "w"],
        ),
        (
            [
                ("work-1", Priority.WORK),
                ("work-2", Priority.WORK),
                ("submit-1", Priority.SUBMIT),
                ("work-3", Priority.WORK),
                ("submit-2", Priority.SUBMIT),
                ("config", Priority.CONFIG),
            ],
            ["submit-1", "submit-2", "config", "work-1", "work-2", "work-3"],
        ),
    ],
)
def test_waiting_calls_run_by_priority_then_arrival(
    calls: list[tuple[str, Priority]], expected: list[str]
) -> None:
    assert _order_behind_a_busy_thread(calls) == expected


def test_never_more_calls_at_once_than_threads() -> None:
    scheduler = PriorityScheduler(3)
    running = 0
    peak = 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1

    futures = [scheduler.submit(Priority(i % 3), "m", call) for i in range(40)]
    for future in futures:
        future.result(timeout=10)
    scheduler.shutdown()
    assert peak == 3
    assert running == 0


def test_results_and_errors_reach_the_future() -> None:
    scheduler = PriorityScheduler(2)
    ok = scheduler.submit(Priority.SUBMIT, "m", lambda a, b=0: a + b, 2, b=3)
    failed = scheduler.submit(Priority.WORK, "m", int, "not a number")
    assert ok.result(timeout=5) == 5
    with pytest.raises(ValueError, match="invalid literal"):
        failed.result(timeout=5)
    # the thread that ran the failing call still serves
    assert scheduler.submit(Priority.WORK, "m", str, 7).result(timeout=5) == "7"
    scheduler.shutdown()


def test_queue_wait_is_observed_per_label() -> None:
    seen: list[tuple[str, float]] = []
    scheduler = PriorityScheduler(1, observe=lambda label, waited: seen.append((label, waited)))
    release = threading.Event()
    blocker = scheduler.submit(Priority.WORK, "GetServers", release.wait, 5)
    _wait_until(lambda: scheduler.waiting == 0)
    queued = scheduler.submit(Priority.SUBMIT, "SubmitResults", time.sleep, 0)
    time.sleep(0.02)
    release.set()
    blocker.result(timeout=5)
    queued.result(timeout=5)
    scheduler.shutdown()
    assert [label for label, _ in seen] == ["GetServers", "SubmitResults"]
    assert seen[1][1] >= 0.02  # it waited for the blocker


def test_shutdown_runs_what_was_filed_then_refuses_new_calls() -> None:
    scheduler = PriorityScheduler(1)
    release = threading.Event()
    done: list[int] = []
    first = scheduler.submit(Priority.WORK, "m", release.wait, 5)
    rest = [scheduler.submit(Priority.WORK, "m", done.append, i) for i in range(3)]
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    release.set()
    stopper.join(timeout=5)
    assert not stopper.is_alive()
    assert first.done()
    assert all(f.done() for f in rest)
    assert done == [0, 1, 2]
    with pytest.raises(RuntimeError, match="after shutdown"):
        scheduler.submit(Priority.SUBMIT, "m", abs, 1)


def test_a_scheduler_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        PriorityScheduler(0)


def test_a_failing_observer_does_not_cost_a_thread() -> None:
    def broken(label: str, waited: float) -> None:
        raise RuntimeError("metrics backend gone")

    scheduler = PriorityScheduler(1, observe=broken)
    for i in range(3):  # the one thread survives each failure and keeps serving
        assert scheduler.submit(Priority.WORK, "m", abs, -i).result(timeout=5) == i
    scheduler.shutdown()
