"""Session-takeover back-off (agent.md §13.6, api.md §10.3).

When two processes share one MQTT client id, the broker disconnects the older one with reason
code 0x8E (Session Taken Over) each time the other connects. Reconnecting at once makes both
ping-pong for ever, and two agents with the same identity would also double their NTP work.
So every takeover lengthens the reconnect delay, NTP work pauses while in back-off, and only a
connection that stays up for the whole stability window (longer than the longest delay) ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 0x8E
DEFAULT_DELAYS: tuple[float, ...] = (10.0, 120.0, 300.0, 600.0, 900.0)
DEFAULT_STABILITY_WINDOW = 1800.0


def delay_for(count: int, delays: Sequence[float] = DEFAULT_DELAYS) -> float:
    """Reconnect delay after ``count`` consecutive takeovers (the last entry is the cap)."""
    return delays[min(max(count, 0), len(delays) - 1)]


class TakeoverState:
    """Counts consecutive takeovers; thread-safe, shared by the connection and the workers."""

    def __init__(
        self,
        stability_window: float = DEFAULT_STABILITY_WINDOW,
        *,
        delays: Sequence[float] = DEFAULT_DELAYS,
    ) -> None:
        if not delays or min(delays) <= 0:
            raise ValueError("reconnect delays must be positive (a zero delay would spin)")
        self.stability_window = stability_window
        self.delays = tuple(delays)
        self._cond = threading.Condition()
        self._count = 0
        self._recoveries = 0
        self._timer: threading.Timer | None = None
        self._timer_token = 0

    @property
    def takeover_count(self) -> int:
        with self._cond:
            return self._count

    def in_backoff(self) -> bool:
        with self._cond:
            return self._count > 0

    def reconnect_delay(self) -> float:
        """Seconds to wait before the next connection attempt."""
        with self._cond:
            delay = delay_for(self._count, self.delays)
        if delay > self.delays[0]:
            log.warning("mqtt reconnect delayed after session takeover", extra={"delay_s": delay})
        return delay

    def record_disconnect(self, code: int, reason: str = "") -> None:
        """A DISCONNECT sent by the broker; 0x8E counts as a takeover, any code stops the timer."""
        taken_over = code == SESSION_TAKEN_OVER
        with self._cond:
            self._cancel_timer_locked()
            if taken_over:
                self._count += 1
            count = self._count
        log.warning(
            "mqtt disconnected by broker",
            extra={
                "reason_code": code,
                "reason": reason,
                "session_taken_over": taken_over,
                "takeover_count": count,
            },
        )

    def mark_connection_up(self) -> None:
        """A successful connection: while in back-off, (re)arm the stability timer."""
        with self._cond:
            if self._count == 0:
                return
            self._cancel_timer_locked()
            self._timer_token += 1
            timer = threading.Timer(self.stability_window, self._stable, args=(self._timer_token,))
            timer.daemon = True
            timer.name = "mqtt-takeover-stability"
            self._timer = timer
            timer.start()

    def wait_recovered(
        self, timeout: float | None = None, *, cancelled: Callable[[], bool] | None = None
    ) -> bool:
        """Block until not in back-off; False on timeout or cancellation (back-off stays).

        ``cancelled`` is checked whenever the state changes or :meth:`wake` is called, so a
        shutdown hook that calls :meth:`wake` ends the wait without polling.
        """
        with self._cond:
            if self._count == 0:
                return True
            generation = self._recoveries

            def done() -> bool:
                return self._recoveries != generation or bool(cancelled and cancelled())

            self._cond.wait_for(done, timeout)
            return self._recoveries != generation

    def wake(self) -> None:
        """Make waiters re-check their cancellation predicate."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stop a pending timer (the state keeps its count)."""
        with self._cond:
            self._cancel_timer_locked()

    def _stable(self, token: int) -> None:
        with self._cond:
            if token != self._timer_token or self._timer is None:
                return
            self._timer = None
            self._count = 0
            self._recoveries += 1
            self._cond.notify_all()
        log.info("mqtt connection stable; session-takeover back-off over")

    def _cancel_timer_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_token += 1
