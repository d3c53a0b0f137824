"""Routes agents' responses to the HTTP request waiting for them (api.md §10.5).

The MQTT network thread calls :meth:`ResponseRouter.deliver`; it must never block there. Each
waiting request owns an :class:`Inbox` backed by an unbounded ``SimpleQueue``, so delivering is
a lock-protected dictionary lookup plus a non-blocking put. A response for a request that has
already finished finds no inbox (or a closed one) and is dropped: upstream v4.1.5 deadlocked
exactly there, by blocking the dispatch thread on a channel nobody read any more.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from ntpmon.mqttcm.topics import TopicError, Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentResponse:
    """One response message: which agent sent it, for which request, and its raw payload."""

    name: str
    request_id: str
    payload: bytes
    trace_id: str = ""
    span_id: str = ""


class Inbox:
    """Responses for one request id; read by the requester only."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._queue: queue.SimpleQueue[AgentResponse] = queue.SimpleQueue()
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def offer(self, response: AgentResponse) -> bool:
        """Never blocks; False when the requester has finished."""
        if self._closed.is_set():
            return False
        self._queue.put_nowait(response)
        return True

    def get(self, timeout: float) -> AgentResponse | None:
        """The next response within ``timeout`` seconds, or None."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def get_until(self, deadline: float) -> AgentResponse | None:
        """The next response before the monotonic ``deadline``, or None."""
        return self.get(deadline - time.monotonic())

    def close(self) -> None:
        self._closed.set()


class ResponseRouter:
    """request id → inbox; registration happens before the request is published."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._lock = threading.Lock()
        self._inboxes: dict[str, Inbox] = {}
        self.dropped = 0
        self.delivered = 0

    def register(self, request_id: str) -> Inbox:
        inbox = Inbox(request_id)
        with self._lock:
            if request_id in self._inboxes:
                raise ValueError(f"request id {request_id} is already registered")
            self._inboxes[request_id] = inbox
        return inbox

    def unregister(self, request_id: str) -> None:
        """Forget a request; safe to call twice and while a delivery races with it."""
        with self._lock:
            inbox = self._inboxes.pop(request_id, None)
        if inbox is not None:
            inbox.close()

    def pending(self) -> int:
        with self._lock:
            return len(self._inboxes)

    def deliver(self, topic: str, payload: bytes, *, trace_id: str = "", span_id: str = "") -> bool:
        """Hand a ``P/data/NAME/ID`` message to its requester; never blocks, never raises."""
        try:
            name, request_id = self.topics.parse_data_topic(topic)
        except TopicError as exc:
            return self._drop("unparsable response topic", topic, str(exc))
        return self.offer(name, request_id, payload, trace_id=trace_id, span_id=span_id)

    def offer(
        self, name: str, request_id: str, payload: bytes, *, trace_id: str = "", span_id: str = ""
    ) -> bool:
        """Hand a response already parsed from its topic to its requester; never blocks."""
        with self._lock:
            inbox = self._inboxes.get(request_id)
        if inbox is None:
            return self._drop("response for an unknown or finished request", request_id)
        response = AgentResponse(name, request_id, bytes(payload), trace_id, span_id)
        if not inbox.offer(response):
            return self._drop("response after the requester finished", request_id)
        with self._lock:
            self.delivered += 1
        return True

    def _drop(self, why: str, topic: str, detail: str = "") -> bool:
        with self._lock:
            self.dropped += 1
        log.debug("mqtt response dropped", extra={"why": why, "topic": topic, "detail": detail})
        return False
