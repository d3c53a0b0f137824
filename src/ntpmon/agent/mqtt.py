"""The agent's MQTT side (agent.md §13): online status, ad-hoc requests, takeover back-off.

* A retained online status after every connection whose subscription the broker granted, again
  every 5 minutes, and an offline status as last will (and on a clean stop).
* ``ntp`` and ``metrics`` requests (span ``mqtt-<type>``, parent from the request's
  ``TraceID``/``SpanID``) run on a small thread pool, never on paho's network thread,
  each within a 5 s budget. The ``ntp`` probe is an injected callable so the runner can hand
  in ``check_host`` with the config of the family that matches the target.
* The shared :class:`TakeoverState`: workers call :meth:`AgentMqtt.wait_ntp_allowed` before
  each retry cycle; while another process holds our MQTT session, NTP work pauses.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from opentelemetry import trace

from ntpmon.agent.config.checkconfig import CheckConfig, MQTTSettings, apply_response
from ntpmon.agent.scope import Scope
from ntpmon.agent.worker import WorkerHooks
from ntpmon.common.clock import Clock, SystemClock
from ntpmon.common.environments import DeployEnv, parse_env
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
from ntpmon.mqttcm.topics import TopicError, Topics, client_id_from_name
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (status, response, error) as returned by ntpmon.agent.monitor.check.check_host
CheckOutcome = tuple[Any, Any, str | None]
AdhocProbe = Callable[[IPAddress], CheckOutcome | None]

STATUS_EXPIRY_S = 86400
REQUEST_BUDGET_S = 5.0


class ProbeConfig(Protocol):
    """What :func:`adhoc_probe` needs of a worker's config (``CheckConfig`` fits)."""

    samples: int
    ip: IPAddress | None


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
    """An ``ntpmon.agent.ntp.NTPResponse`` as the ``NTP`` object of a reply."""
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


def adhoc_probe(
    configs: Callable[[], Sequence[ProbeConfig]],
    check: Callable[[IPAddress, Any], CheckOutcome],
) -> AdhocProbe:
    """The ad-hoc probe the runner hands to :class:`AgentMqtt`.

    It uses the config of the worker whose family matches the target (upstream used whichever
    was fetched last [QUIRK fixed]), falls back to any config, and probes with one sample on a
    copy (upstream mutated the shared config [QUIRK fixed]). No config yet → None (dropped).
    """

    def probe(ip: IPAddress) -> CheckOutcome | None:
        available = list(configs())
        if not available:
            return None
        same_family = [c for c in available if c.ip is not None and c.ip.version == ip.version]
        cfg = (same_family or available)[0]
        return check(ip, replace(cfg, samples=1))  # type: ignore[type-var]

    return probe


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
    ) -> None:
        self.options = options
        self.topics = Topics(options.env, options.topic_prefix)
        self.takeover = takeover or TakeoverState()
        self._probe = probe
        self._clock = clock or SystemClock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=options.request_workers, thread_name_prefix="mqtt-request"
        )
        self._status_thread: threading.Thread | None = None
        self.handled: dict[str, int] = {"ntp": 0, "metrics": 0}
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
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(f"mqtt-{request_type}", context=parent_context(message)):
            self._answer(request_type, message, received + self.options.request_budget_s)

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


# -- the seam of ``run_monitor`` (WorkerHooks + a background task) ----------------------------
def agent_tls_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """System roots plus the monitor CA (``ca.pem``, when present); our client certificate."""
    context = broker_tls_context()
    if ca_file.exists():
        context.load_verify_locations(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class AgentMqttBridge:
    """Connects :class:`AgentMqtt` to the agent runner without the runner knowing MQTT.

    * ``on_config`` (every worker's GetConfig answer) keeps each family's probe config and the
      MQTT settings (host, port, JWT; the prefix field is ignored, agent.md §13.1);
    * ``wait_if_paused`` is the takeover gate of the workers (§13.6);
    * ``run`` is the background task: once an MQTT config is known it starts the client (host
      and port read once), and stops it when the scope is cancelled.

    ``tls`` builds the broker TLS context; None means plain TCP (devel only, the caller decides).
    """

    def __init__(
        self,
        env: DeployEnv,
        tls_name: Callable[[], str],
        tls: Callable[[], ssl.SSLContext] | None,
        *,
        check: Callable[[IPAddress, Any], CheckOutcome],
        port: int = 123,
        allow_loopback: bool = False,
        takeover: TakeoverState | None = None,
        topic_prefix: str = "",
        version: str | None = None,
    ) -> None:
        self.env = env
        self.takeover = takeover or TakeoverState()
        self._tls_name = tls_name
        self.tls_factory = tls
        self._check = check
        self._base = CheckConfig(port=port, allow_loopback=allow_loopback)
        self._topic_prefix = topic_prefix
        self._version = version
        self._lock = threading.Lock()
        self._configs: dict[int, CheckConfig] = {}
        self._mqtt: MQTTSettings | None = None
        self._mqtt_known = threading.Event()
        self.client: AgentMqtt | None = None

    def hooks(self) -> WorkerHooks:
        return WorkerHooks(on_config=self.on_config, wait_if_paused=self.wait_if_paused)

    def on_config(self, family: int, resp: pb.GetConfigResponse) -> None:
        with self._lock:
            cfg = apply_response(self._configs.get(family, self._base), resp)
            self._configs[family] = cfg
            if cfg.mqtt is not None and cfg.mqtt.host:
                self._mqtt = cfg.mqtt
        if self._mqtt is not None:
            self._mqtt_known.set()

    def configs(self) -> list[CheckConfig]:
        with self._lock:
            return [self._configs[f] for f in sorted(self._configs)]

    def jwt(self) -> bytes:
        with self._lock:
            return self._mqtt.jwt if self._mqtt is not None else b""

    def wait_if_paused(self, scope: Scope) -> None:
        if not self.takeover.in_backoff():
            return
        log.warning("pausing NTP work: MQTT session taken over by another client")
        remove = scope.on_cancel(self.takeover.wake)
        try:
            self.takeover.wait_recovered(None, cancelled=lambda: scope.cancelled)
        finally:
            remove()

    def run(self, _cfg: object, scope: Scope) -> None:
        """Background task for ``run_monitor``: start once MQTT is configured, stop on cancel."""
        remove = scope.on_cancel(self._mqtt_known.set)
        try:
            self._mqtt_known.wait()
        finally:
            remove()
        if scope.cancelled:
            return
        with self._lock:
            settings = self._mqtt
        assert settings is not None
        endpoint = BrokerEndpoint(
            settings.host, settings.port, self.tls_factory() if self.tls_factory else None
        )
        options = AgentMqttOptions(
            env=self.env,
            name=self._tls_name(),
            endpoint=endpoint,
            topic_prefix=self._topic_prefix,
            version=self._version,
        )
        self.client = AgentMqtt(
            options, self.jwt, adhoc_probe(self.configs, self._check), takeover=self.takeover
        )
        self.client.start()
        try:
            scope.wait()
        finally:
            self.client.stop()


def monitor_bridge(
    cfg: Any, env: str, *, port: int, allow_loopback: bool, environ: Mapping[str, str]
) -> AgentMqttBridge:
    """The bridge ``ntppool-agent monitor`` uses: ``cfg`` is its ``AppConfig``.

    TLS with the state directory's client certificate (system roots plus ``ca.pem``); with env
    ``devel`` and ``MONITOR_MQTT_PLAIN=true``, plain TCP for a broker on loopback.
    """
    from ntpmon.agent.monitor.check import check_host

    deploy_env = parse_env(env)
    plain = deploy_env is DeployEnv.DEVEL and environ.get("MONITOR_MQTT_PLAIN", "").lower() in {
        "1",
        "true",
        "yes",
    }

    def tls() -> ssl.SSLContext:
        return agent_tls_context(cfg.ca_path, cfg.cert_path, cfg.key_path)

    return AgentMqttBridge(
        deploy_env,
        cfg.tls_name,
        None if plain else tls,
        check=check_host,
        port=port,
        allow_loopback=allow_loopback,
    )
