"""Bad requests on the RPC port are logged as one WARNING line each, rate-limited per peer.

Why: anyone who can reach the port (and anyone with a client certificate) can send garbage as
fast as the network allows; a log line per request, let alone a traceback, would turn that into
a full disk. Each peer address gets a token bucket (:class:`PeerBuckets`, a bounded map: the
least recently seen peer is forgotten first), and what a peer's bucket refused is counted into
its next line. Hypercorn's own error logger is cut to one line without a traceback the same way
(:class:`OneLineFilter`), keyed by message since it knows no peer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc

log = logging.getLogger("ntpmon.api.rpc.bad_request")

# Statuses that mean "the request was malformed", not "the service said no".
MALFORMED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class PeerBuckets:
    """Token buckets by key: ``burst`` lines at once, then one per ``1 / rate`` seconds."""

    def __init__(
        self,
        rate: float = 1 / 60,
        burst: int = 5,
        max_peers: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()  # hypercorn's loop and the handler threads both report

    def take(self, key: str) -> int | None:
        """None when ``key`` is over its rate (counted); else how many were suppressed before."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                while len(self._buckets) >= self.max_peers:
                    self._buckets.popitem(last=False)
            self._buckets[key] = bucket
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens < 1:
                bucket.suppressed += 1
                return None
            bucket.tokens -= 1
            suppressed, bucket.suppressed = bucket.suppressed, 0
            return suppressed

    def __len__(self) -> int:
        return len(self._buckets)


class BadRequestLog:
    """One WARNING line per bad request, as long as its peer's bucket allows."""

    def __init__(self, buckets: PeerBuckets | None = None) -> None:
        self.buckets = buckets or PeerBuckets()

    def report(self, peer: str, path: str, reason: str) -> None:
        """Log that ``peer`` sent a malformed request to ``path`` (the reason's first line)."""
        host = peer.rsplit(":", 1)[0]  # per address, not per connection
        suppressed = self.buckets.take(host)
        if suppressed is None:
            return
        log.warning(
            "bad request",
            extra={
                "peer": peer,
                "path": path[:200],
                "reason": reason.splitlines()[0][:300] if reason else "",
                "suppressed": suppressed,
            },
        )


class OneLineFilter(logging.Filter):
    """Turns each record of a logger into one WARNING line without traceback, rate-limited."""

    def __init__(self, buckets: PeerBuckets | None = None) -> None:
        super().__init__()
        self.buckets = buckets or PeerBuckets()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}".splitlines()[0]
            record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return self.buckets.take(record.getMessage()) is not None


def tame(logger: logging.Logger) -> logging.Logger:
    """Install :class:`OneLineFilter` on ``logger`` once; returns it."""
    if not any(isinstance(f, OneLineFilter) for f in logger.filters):
        logger.addFilter(OneLineFilter())
    return logger
