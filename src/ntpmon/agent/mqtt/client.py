"""The agent's MQTT side (agent.md §13): online status, ad-hoc requests, takeover back-off.

* A retained online status after every connection whose subscription the broker granted, again
  every 5 minutes, and an offline status as last will (and on a clean stop).
* ``ntp`` and ``metrics`` requests (span ``mqtt-<type>`` on the injected tracer, parent from the
  request's ``TraceID``/``SpanID``) run on a small thread pool, never on paho's network thread,
  each within a 5 s budget. The ``ntp`` probe is an injected callable so the runner can hand
  in ``check_host`` with the config of the family that matches the target.
* ``traceroute`` requests (issue 17) run the injected tracer with a budget of their own
  (a trace takes longer than an NTP probe) and answer on the response topic monitor-api
  names (``P/data/NAME/traceroute/<request id>``); :meth:`AgentMqtt.publish_traceroute`
  publishes the traces a worker ran because GetServers set ``trace``.
* The shared :class:`TakeoverState`: workers call :meth:`AgentMqtt.wait_ntp_allowed` before
  each retry cycle; while another process holds our MQTT session, NTP work pauses.

The runner's seam (``AgentMqttBridge``, ``adhoc_probe``) lives in ``ntpmon.agent.mqtt.bridge``,
which imports this module (and paho-mqtt) only once a broker is configured.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from opentelemetry import trace

from ntpmon.agent.mqtt.probe import AdhocProbe, CheckOutcome, IPAddress, TraceFn
from ntpmon.common.clock import Clock, SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.ulid import new_ulid
from ntpmon.mqttcm.connection import (
    BrokerEndpoint,
    ConnectionManager,
    SessionOptions,
    Subscription,
    WillMessage,
    parent_context,
    publish_properties,
    response_topic,
    user_property,
)
from ntpmon.mqttcm.status import encode_status, make_status
from ntpmon.mqttcm.takeover import TakeoverState
from ntpmon.mqttcm.tlsconfig import broker_tls_context
from ntpmon.mqttcm.topics import TRACEROUTE, TopicError, Topics, client_id_from_name
from ntpmon.traceroute.result import REASON_REQUEST, TraceMessage

log = logging.getLogger(__name__)

STATUS_EXPIRY_S = 86400
REQUEST_BUDGET_S = 5.0
TRACEROUTE_BUDGET_S = 30.0


@dataclass(frozen=True, slots=True)
class AgentMqttOptions:
    """Connection settings, read once at start (agent.md §13.2).

    ``version`` overrides the reported agent version (default: this build's). monitor-api only
    sends ad-hoc checks to agents reporting ≥ v4.0.4 (agent.md §13.3).
    """

    env: DeployEnv
    name: str
    endpoint: BrokerEndpoint
    topic_prefix: str = ""
    version: str | None = None
    will_delay_s: int = 30
    status_interval_s: float = 300.0
    request_budget_s: float = REQUEST_BUDGET_S
    traceroute_budget_s: float = TRACEROUTE_BUDGET_S
    request_workers: int = 4


# -- the NTP answer, in beevik/ntp field names and Go encodings (agent.md §13.4) [COMPAT] ------
def go_rfc3339_nano(when: datetime) -> str:
    """Go ``time.RFC3339Nano`` in UTC: fraction without trailing zeros, ``Z``."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def ntp_response_json(resp: Any) -> dict[str, Any]:
    """An ``ntpmon.ntp.sntp.NTPResponse`` as the ``NTP`` object of a reply."""
    return {
        "Time": go_rfc3339_nano(resp.time),
        "ClockOffset": int(resp.clock_offset_ns),
        "RTT": int(resp.rtt_ns),
        "Precision": int(resp.precision_ns),
        "Version": int(resp.version),
        "Stratum": int(resp.stratum),
        "ReferenceID": int(resp.reference_id),
        "ReferenceTime": go_rfc3339_nano(resp.reference_time),
        "RootDelay": int(resp.root_delay_ns),
        "RootDispersion": int(resp.root_dispersion_ns),
        "RootDistance": int(resp.root_distance_ns),
        "Leap": int(resp.leap),
        "MinError": int(resp.min_error_ns),
        "KissCode": str(resp.kiss_code),
        "Poll": int(resp.poll_ns),
    }


def ntp_reply(outcome: CheckOutcome) -> bytes:
    """``{"NTP":...,"Error":...}``; ``NTP`` whenever a reply was parsed, fields omitted if empty."""
    _status, resp, error = outcome
    doc: dict[str, Any] = {}
    if resp is not None:
        doc["NTP"] = ntp_response_json(resp)
    if error:
        doc["Error"] = error
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_ntp_request(payload: bytes) -> IPAddress:
    """The target of ``{"IP":"<addr>"}``; ValueError for anything else."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or not isinstance(doc.get("IP"), str):
        raise ValueError("request has no IP")
    return ipaddress.ip_address(doc["IP"])


class AgentMqtt:
    """The agent's MQTT client; ``start`` once, ``stop`` once."""

    def __init__(
        self,
        options: AgentMqttOptions,
        jwt: Callable[[], bytes | str | None],
        probe: AdhocProbe,
        *,
        takeover: TakeoverState | None = None,
        clock: Clock | None = None,
        tracer: trace.Tracer | None = None,
        traceroute: TraceFn | None = None,
    ) -> None:
        """``tracer`` records the request spans (the agent's telemetry); None records nothing.

        ``traceroute`` runs one trace (:func:`ntpmon.agent.mqtt.probe.traceroute_fn`); without
        it, traceroute requests are dropped like unknown ones.
        """
        self.options = options
        self.topics = Topics(options.env, options.topic_prefix)
        self.takeover = takeover or TakeoverState()
        self._probe = probe
        self._traceroute = traceroute
        self._clock = clock or SystemClock()
        self._tracer = tracer or trace.NoOpTracer()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=options.request_workers, thread_name_prefix="mqtt-request"
        )
        self._status_thread: threading.Thread | None = None
        self.handled: dict[str, int] = {"ntp": 0, "metrics": 0, TRACEROUTE: 0}
        self._handled_lock = threading.Lock()
        will = WillMessage(
            topic=self.topics.status(options.name),
            payload=encode_status(make_status(False, self._clock.now(), options.version)),
            delay_s=options.will_delay_s,
            expiry_s=STATUS_EXPIRY_S,
        )
        session = SessionOptions(
            client_id=client_id_from_name(options.name), username=options.name, will=will
        )
        self.connection = ConnectionManager(
            options.endpoint,
            session,
            jwt,
            takeover=self.takeover,
            subscriptions=[
                Subscription(self.topics.request_subscription(options.name), 1, self._on_request)
            ],
            on_subscribed=self.publish_status,
            name="agent",
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.connection.start()
        self._status_thread = threading.Thread(
            target=self._republish_status, name="mqtt-status", daemon=True
        )
        self._status_thread.start()

    def stop(self) -> None:
        """Announce offline, disconnect, and finish the requests in flight."""
        self._stop.set()
        self.connection.stop(before_disconnect=self._announce_offline)
        if self._status_thread is not None:
            self._status_thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- takeover gate for the workers -------------------------------------------------------
    def ntp_paused(self) -> bool:
        """True while another client holds this agent's session (agent.md §13.6)."""
        return self.takeover.in_backoff()

    def wait_ntp_allowed(
        self, timeout: float | None = None, *, cancelled: Callable[[], bool] | None = None
    ) -> bool:
        """Block while NTP work is paused; False on timeout or cancellation.

        Cancellation is re-checked when :meth:`TakeoverState.wake` runs (hook it to shutdown).
        """
        if self.takeover.in_backoff():
            log.warning("pausing NTP work: MQTT session taken over by another client")
        return self.takeover.wait_recovered(timeout, cancelled=cancelled)

    # -- status -------------------------------------------------------------------------------
    def _send_status(self, online: bool) -> paho.MQTTMessageInfo:
        """A retained status (QoS 1, 24 h expiry) stamped now."""
        payload = encode_status(make_status(online, self._clock.now(), self.options.version))
        return self.connection.publish(
            self.topics.status(self.options.name),
            payload,
            qos=1,
            retain=True,
            properties=publish_properties(expiry_s=STATUS_EXPIRY_S),
        )

    def publish_status(self) -> None:
        """The online status; failures only warn."""
        info = self._send_status(True)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            log.warning("publishing online status failed", extra={"rc": int(info.rc)})

    def _announce_offline(self) -> None:
        """On a clean stop the broker sends no will, so say offline ourselves."""
        try:
            self._send_status(False).wait_for_publish(2.0)
        except (RuntimeError, ValueError) as exc:
            log.warning("offline status not sent", extra={"error": str(exc)})

    def _republish_status(self) -> None:
        while not self._stop.wait(self.options.status_interval_s):
            if self.connection.is_connected():
                self.publish_status()

    # -- requests (network thread → pool) ---------------------------------------------------
    def _on_request(self, message: paho.MQTTMessage) -> None:
        received = time.monotonic()
        try:
            self._pool.submit(self._handle_request, message, received)
        except RuntimeError:
            log.debug("request after shutdown dropped", extra={"topic": message.topic})

    def _handle_request(self, message: paho.MQTTMessage, received: float) -> None:
        try:
            request_type, _name = self.topics.parse_request_topic(message.topic)
        except TopicError as exc:
            log.warning("bad request topic", extra={"error": str(exc)})
            return
        budget = (
            self.options.traceroute_budget_s
            if request_type == TRACEROUTE
            else self.options.request_budget_s
        )
        with self._tracer.start_as_current_span(
            f"mqtt-{request_type}", context=parent_context(message)
        ):
            self._answer(request_type, message, received + budget)

    def _answer(self, request_type: str, message: paho.MQTTMessage, deadline: float) -> None:
        reply_to = response_topic(message)
        if not reply_to:
            log.warning("request without response topic dropped", extra={"type": request_type})
            return
        if request_type == "metrics":
            reply = b""
        elif request_type == "ntp":
            reply = self._ntp_reply(message.payload)
            if reply is None:
                return
        elif request_type == TRACEROUTE and self._traceroute is not None:
            reply = self._traceroute_reply(message.payload, self._traceroute)
            if reply is None:
                return
        else:
            log.info("unknown request type ignored", extra={"type": request_type})
            return
        if time.monotonic() >= deadline:
            log.warning("request budget exceeded; reply dropped", extra={"type": request_type})
            return
        self._reply(reply_to, reply, message, deadline)
        with self._handled_lock:
            self.handled[request_type] += 1

    def _ntp_reply(self, payload: bytes) -> bytes | None:
        try:
            ip = parse_ntp_request(payload)
        except ValueError as exc:
            log.warning("invalid ntp request dropped", extra={"error": str(exc)})
            return None
        outcome = self._probe(ip)
        if outcome is None:
            log.warning("ntp request before any config; dropped", extra={"ip": str(ip)})
            return None
        return ntp_reply(outcome)

    def _traceroute_reply(self, payload: bytes, run: TraceFn) -> bytes | None:
        try:
            ip = parse_ntp_request(payload)
        except ValueError as exc:
            log.warning("invalid traceroute request dropped", extra={"error": str(exc)})
            return None
        result, error = run(ip)
        return TraceMessage(result, error, REASON_REQUEST).to_payload()

    def publish_traceroute(self, message: TraceMessage) -> bool:
        """Publish a trace this agent ran on its own (QoS 1); False when not connected."""
        if not self.connection.is_connected():
            return False
        topic = self.topics.traceroute_result(self.options.name, new_ulid(self._clock.now()).text)
        info = self.connection.publish(topic, message.to_payload(), qos=1, retain=False)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def _reply(
        self, topic: str, payload: bytes, request: paho.MQTTMessage, deadline: float
    ) -> None:
        if not self.connection.wait_connected(max(0.0, deadline - time.monotonic())):
            log.warning("no connection within the request budget; reply dropped")
            return
        props = publish_properties(
            user_properties=[
                ("TraceID", user_property(request, "TraceID")),
                ("SpanID", user_property(request, "SpanID")),
            ]
        )
        self.connection.publish(topic, payload, qos=0, retain=False, properties=props)


# -- TLS for the broker (``ntpmon.agent.mqtt.bridge`` builds it) ------------------------------
def agent_tls_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """System roots plus the monitor CA (``ca.pem``, when present); our client certificate."""
    context = broker_tls_context()
    if ca_file.exists():
        context.load_verify_locations(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context
