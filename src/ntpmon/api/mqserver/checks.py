"""Requests that go out to agents and wait for their answers (api.md §11.1, §11.4).

These run on an HTTP worker thread (never on the MQTT thread). The inbox is registered before
the first publish and always unregistered at the end, so a late answer is dropped by the router.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ntpmon.api.mqserver.adhoc import (
    HEALTHY_ANSWERS_WANTED,
    AgentAnswer,
    IPAddress,
    decode_answer,
    target_ip_version,
)
from ntpmon.api.mqserver.broker import MqServer, TraceIds
from ntpmon.api.mqserver.router import Inbox
from ntpmon.common.clock import Clock
from ntpmon.common.ulid import new_ulid

log = logging.getLogger(__name__)


@dataclass
class CheckProgress:
    """Counts that decide when an ad-hoc check is finished."""

    check_all: bool
    sent: int = 0
    answered: int = 0
    healthy: int = 0
    answers: list[AgentAnswer] = field(default_factory=list)

    def enough(self) -> bool:
        """Without ``all``: three healthy answers are enough."""
        return not self.check_all and self.healthy >= HEALTHY_ANSWERS_WANTED

    def all_answered(self) -> bool:
        return self.answered >= self.sent

    def record(self, answer: AgentAnswer | None) -> None:
        self.answered += 1
        if answer is None:
            return
        self.answers.append(answer)
        if answer.healthy():
            self.healthy += 1


@dataclass(frozen=True, slots=True)
class CheckResult:
    request_id: str
    trace: TraceIds
    asked: int
    answers: list[AgentAnswer]


def _collect(inbox: Inbox, progress: CheckProgress, until: float, stop: Callable[[], bool]) -> None:
    while not stop():
        response = inbox.get_until(until)
        if response is None:
            return
        progress.record(decode_answer(response.name, response.payload))


def run_adhoc_check(
    server: MqServer, ip: IPAddress, *, check_all: bool, clock: Clock
) -> CheckResult:
    """Ask the eligible agents to probe ``ip``; answers in arrival order.

    Without ``all`` one request goes out every ``send_pause_s`` until three healthy answers
    arrived; with ``all`` every request goes out at once. Either way the check ends at the
    deadline, and also as soon as every agent asked has answered [PY: upstream then waited for
    the deadline, which only delays the same answer].
    """
    settings = server.settings
    request_id = new_ulid(clock.now()).text
    trace = TraceIds.new()
    deadline = time.monotonic() + settings.check_deadline_s
    targets = server.clients.adhoc_targets(target_ip_version(ip))
    payload = json.dumps({"IP": str(ip)}, separators=(",", ":")).encode()
    progress = CheckProgress(check_all)
    inbox = server.router.register(request_id)
    try:
        for index, client in enumerate(targets):
            if progress.enough() or time.monotonic() >= deadline:
                break
            if server.publish_request(client.key, "ntp", payload, request_id, trace):
                progress.sent += 1
            if not check_all and index < len(targets) - 1:
                pause_until = min(deadline, time.monotonic() + settings.send_pause_s)
                _collect(inbox, progress, pause_until, progress.enough)
        _collect(inbox, progress, deadline, lambda: progress.enough() or progress.all_answered())
    finally:
        server.router.unregister(request_id)
    log.info(
        "ad-hoc check",
        extra={
            "ip": str(ip),
            "request_id": request_id,
            "asked": progress.sent,
            "answers": len(progress.answers),
            "healthy": progress.healthy,
        },
    )
    return CheckResult(request_id, trace, progress.sent, progress.answers)


class MetricsRequestError(Exception):
    """A metrics request that got no usable answer; ``status`` and text go to the client."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def fetch_agent_metrics(server: MqServer, key: str, *, clock: Clock) -> bytes:
    """Ask agent ``key`` for its metrics (api.md §11.4); raises :class:`MetricsRequestError`."""
    if server.clients.get(key) is None:
        raise MetricsRequestError(404, "Not found")
    request_id = new_ulid(clock.now()).text
    inbox = server.router.register(request_id)
    try:
        if not server.publish_request(key, "metrics", b"", request_id, TraceIds.new()):
            raise MetricsRequestError(500, "server error")
        response = inbox.get(server.settings.check_deadline_s)
    finally:
        server.router.unregister(request_id)
    if response is None:
        raise MetricsRequestError(502, "timeout")
    if response.name != key:
        raise MetricsRequestError(502, "unexpected response")
    return response.payload
