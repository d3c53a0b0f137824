"""Traceroutes on monitor-api's MQTT side (issue 17, items 1 and 3).

* :class:`TracerouteStore` ingests every message on ``P/data/NAME/traceroute/ID``: validated
  (:func:`ntpmon.traceroute.result.decode_message`), then matched and stored by
  :func:`ntpmon.api.tracestore.store_message` (the agent's monitor row of the target's family,
  the server by its IP), as the management API's upload is. A trace of an address
  that is not a pool server (possible through the internal API) is answered but not stored.
* :func:`run_traceroute_check` is ``POST /check/traceroute/<ip>``: every online agent with a
  monitor of the target's family is asked at once; answers are collected until all came or the
  deadline passed (a trace takes seconds, not the NTP check's milliseconds).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from ntpmon.api.mqserver.adhoc import IPAddress, server_label, target_ip_version
from ntpmon.api.mqserver.broker import MqServer, TraceIds
from ntpmon.api.mqserver.clients import ClientState
from ntpmon.api.tracestore import StoreOutcome, store_message
from ntpmon.common.clock import Clock
from ntpmon.common.ulid import new_ulid
from ntpmon.mqttcm.topics import TRACEROUTE
from ntpmon.traceroute.result import TraceFormatError, TraceMessage, decode_message, to_json

log = logging.getLogger(__name__)


class TracerouteStore:
    """Stores agents' traceroutes; called on monitor-api's MQTT ingest thread, never raises."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self.stored = 0
        self.refused = 0

    def __call__(self, client: ClientState | None, name: str, payload: bytes) -> int | None:
        """Validate and store one message; the new row id, or None (logged) when not stored."""
        try:
            message = decode_message(payload)
        except TraceFormatError as exc:
            self.refused += 1
            log.warning("traceroute refused", extra={"client": name, "error": str(exc)})
            return None
        if message.result is None:
            log.info(
                "traceroute failed on the agent", extra={"client": name, "error": message.error}
            )
            return None
        try:
            with self._engine.begin() as conn:
                stored = store_message(
                    conn,
                    monitors=client.monitors if client is not None else (),
                    message=message,
                    now=self._clock.now(),
                )
        except Exception as exc:  # the ingest thread must survive a database outage
            log.error("storing a traceroute failed", extra={"client": name, "error": repr(exc)})
            return None
        if stored.outcome is not StoreOutcome.STORED:
            log.info("traceroute not stored", extra={"client": name, "why": stored.outcome.value})
            return None
        self.stored += 1
        return stored.row_id


@dataclass(frozen=True, slots=True)
class TraceAnswer:
    """One agent's answer as the HTTP reply shows it."""

    server: str
    message: TraceMessage | None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"Server": self.server}
        if self.message is None:
            doc["Error"] = "undecodable answer"
            return doc
        if self.message.result is not None:
            doc["Traceroute"] = to_json(self.message.result)
        if self.message.error:
            doc["Error"] = self.message.error
        return doc


def run_traceroute_check(server: MqServer, ip: IPAddress, *, clock: Clock) -> list[TraceAnswer]:
    """Ask every eligible agent to trace ``ip``; their answers in arrival order."""
    request_id = new_ulid(clock.now()).text
    trace = TraceIds.new()
    deadline = time.monotonic() + server.settings.traceroute_deadline_s
    targets = server.clients.adhoc_targets(target_ip_version(ip))
    payload = json.dumps({"IP": str(ip)}, separators=(",", ":")).encode()
    inbox = server.router.register(request_id)
    answers: list[TraceAnswer] = []
    try:
        sent = sum(
            server.publish_request(
                client.key,
                TRACEROUTE,
                payload,
                request_id,
                trace,
                response_topic=server.topics.traceroute_result(client.key, request_id),
            )
            for client in targets
        )
        while len(answers) < sent:
            response = inbox.get_until(deadline)
            if response is None:
                break
            try:
                message: TraceMessage | None = decode_message(response.payload)
            except TraceFormatError:
                message = None
            answers.append(TraceAnswer(server_label(response.name), message))
    finally:
        server.router.unregister(request_id)
    log.info(
        "traceroute check",
        extra={"ip": str(ip), "request_id": request_id, "asked": sent, "answers": len(answers)},
    )
    return answers
