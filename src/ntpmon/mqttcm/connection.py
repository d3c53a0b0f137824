"""A paho-mqtt (v2 API, MQTT v5) connection that keeps itself up.

paho's own network thread (``loop_start``) does the I/O and the reconnecting; this class adds
what both ntpmon sides need on top:

* the password is produced afresh for every (re)connect (JWTs expire), via ``on_pre_connect``;
* the delay before every reconnect comes from :class:`TakeoverState` (a fixed, positive delay,
  so a broker that refuses us or drops us at once never makes the client spin);
* broker-sent DISCONNECT packets feed the takeover back-off;
* subscriptions are renewed on every connection, and ``on_subscribed`` runs only when the
  broker granted them all (the agent publishes its online status from there);
* handler exceptions are logged and never reach paho's network thread.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from opentelemetry import context as otel_context
from opentelemetry import trace
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ntpmon.mqttcm.takeover import TakeoverState

log = logging.getLogger(__name__)

MessageHandler = Callable[[paho.MQTTMessage], None]
CLEAN_START_FIRST_ONLY = paho.MQTT_CLEAN_START_FIRST_ONLY


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where the broker is; ``tls`` None means plain TCP (tests, a broker on loopback)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None

    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/"


@dataclass(frozen=True, slots=True)
class WillMessage:
    """The last will the broker publishes after an unclean disconnect (plus its delay)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = True
    delay_s: int = 30
    expiry_s: int = 86400


@dataclass(frozen=True, slots=True)
class Subscription:
    """A topic filter, its QoS and handler; ``no_local`` skips our own publications."""

    topic_filter: str
    qos: int
    handler: MessageHandler
    no_local: bool = False


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Per-connection MQTT v5 settings (agent.md §13.2, api.md §10.3)."""

    client_id: str
    username: str
    clean_start: bool | int = CLEAN_START_FIRST_ONLY
    session_expiry_s: int = 60
    keepalive_s: int = 120
    will: WillMessage | None = None


@dataclass
class _SubscribeWait:
    mid: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)


def publish_properties(
    *,
    response_topic: str | None = None,
    user_properties: Sequence[tuple[str, str]] = (),
    expiry_s: int | None = None,
) -> Properties:
    """MQTT v5 PUBLISH properties (response topic, user properties, message expiry)."""
    props = Properties(PacketTypes.PUBLISH)
    if response_topic:
        props.ResponseTopic = response_topic
    if user_properties:
        props.UserProperty = list(user_properties)
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props


def user_property(message: paho.MQTTMessage, key: str) -> str:
    """The first user property ``key`` of a received message, "" when absent."""
    props = getattr(message, "properties", None)
    for name, value in getattr(props, "UserProperty", None) or ():
        if name == key:
            return str(value)
    return ""


def parent_context(message: paho.MQTTMessage) -> otel_context.Context | None:
    """The remote span named by the ``TraceID``/``SpanID`` user properties (hex), if valid."""
    try:
        trace_id = int(user_property(message, "TraceID"), 16)
        span_id = int(user_property(message, "SpanID"), 16)
    except ValueError:
        return None
    span_context = trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    if not span_context.is_valid:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def response_topic(message: paho.MQTTMessage) -> str:
    props = getattr(message, "properties", None)
    return str(getattr(props, "ResponseTopic", "") or "")


class ConnectionManager:
    """One long-lived MQTT v5 client; start once, stop once."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        session: SessionOptions,
        password: Callable[[], bytes | str | None],
        *,
        takeover: TakeoverState | None = None,
        subscriptions: Sequence[Subscription] = (),
        on_subscribed: Callable[[], None] | None = None,
        name: str = "mqtt",
    ) -> None:
        self.endpoint = endpoint
        self.session = session
        self.takeover = takeover or TakeoverState()
        self._password = password
        self._subscriptions = tuple(subscriptions)
        self._on_subscribed = on_subscribed
        self._name = name
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._subscribe_wait = _SubscribeWait()
        self.connections = 0
        self.client = self._build_client()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; failures are retried after the back-off delay."""
        if self._started:
            raise RuntimeError("connection manager already started")
        self._started = True
        delay = self.takeover.reconnect_delay()
        self.client.reconnect_delay_set(delay, delay)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session.session_expiry_s
        self.client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=self.session.keepalive_s,
            clean_start=self.session.clean_start,
            properties=props,
        )
        self.client.loop_start()
        log.info(
            "mqtt connecting",
            extra={
                "component": self._name,
                "broker": self.endpoint.url(),
                "client_id": self.session.client_id,
            },
        )

    def stop(self, *, before_disconnect: Callable[[], None] | None = None) -> None:
        """Disconnect cleanly (no will) and stop the network thread."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if before_disconnect is not None and self._connected.is_set():
            try:
                before_disconnect()
            except Exception:
                log.exception("mqtt shutdown hook failed", extra={"component": self._name})
        self.client.disconnect()
        if self._started:
            self.client.loop_stop()
        self.takeover.close()
        self.takeover.wake()
        self._connected.clear()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    # -- messaging ------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> paho.MQTTMessageInfo:
        """Queue a message (thread-safe); paho's network thread sends it."""
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    # -- paho callbacks (network thread) ----------------------------------------------------
    def _build_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.session.client_id,
            protocol=paho.MQTTv5,
        )
        client.suppress_exceptions = True
        if self.endpoint.tls is not None:
            client.tls_set_context(self.endpoint.tls)
        will = self.session.will
        if will is not None:
            props = Properties(PacketTypes.WILLMESSAGE)
            props.WillDelayInterval = will.delay_s
            props.MessageExpiryInterval = will.expiry_s
            client.will_set(will.topic, will.payload, will.qos, will.retain, properties=props)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        for sub in self._subscriptions:
            client.message_callback_add(sub.topic_filter, self._guarded(sub.handler))
        return client

    def _guarded(
        self, handler: MessageHandler
    ) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
        def call(_client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
            try:
                handler(message)
            except Exception:
                log.exception(
                    "mqtt message handler failed",
                    extra={"component": self._name, "topic": message.topic},
                )

        return call

    def _on_pre_connect(self, client: paho.Client, _userdata: Any) -> None:
        try:
            secret = self._password()
        except Exception:
            log.exception("mqtt password unavailable", extra={"component": self._name})
            secret = None
        client.username_pw_set(self.session.username, secret or None)

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning(
                "mqtt connection refused",
                extra={"component": self._name, "reason_code": reason.value, "reason": str(reason)},
            )
            return
        self.connections += 1
        self.takeover.mark_connection_up()
        self._connected.set()
        log.info(
            "mqtt connected",
            extra={
                "component": self._name,
                "broker": self.endpoint.url(),
                "connections": self.connections,
            },
        )
        if not self._subscriptions:
            self._subscribed()
            return
        result, mid = client.subscribe(
            [
                (s.topic_filter, SubscribeOptions(qos=s.qos, noLocal=s.no_local))
                for s in self._subscriptions
            ]
        )
        if result != paho.MQTT_ERR_SUCCESS:
            log.error("mqtt subscribe failed", extra={"component": self._name, "rc": int(result)})
            return
        with self._subscribe_wait.lock:
            self._subscribe_wait.mid = mid

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        with self._subscribe_wait.lock:
            if mid != self._subscribe_wait.mid:
                return
            self._subscribe_wait.mid = -1
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error(
                "mqtt subscription refused; not announcing",
                extra={"component": self._name, "reasons": ",".join(failed)},
            )
            return
        self._subscribed()

    def _subscribed(self) -> None:
        if self._on_subscribed is None:
            return
        try:
            self._on_subscribed()
        except Exception:
            log.exception("mqtt on-subscribed hook failed", extra={"component": self._name})

    def _on_disconnect(
        self,
        client: paho.Client,
        _userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._connected.clear()
        if self._stopped.is_set():
            return
        if flags.is_disconnect_packet_from_server:
            self.takeover.record_disconnect(reason.value, str(reason))
        delay = self.takeover.reconnect_delay()
        client.reconnect_delay_set(delay, delay)
        log.info(
            "mqtt disconnected; will reconnect",
            extra={
                "component": self._name,
                "reason_code": reason.value,
                "reason": str(reason),
                "delay_s": delay,
            },
        )

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        log.info(
            "mqtt connection attempt failed",
            extra={"component": self._name, "broker": self.endpoint.url()},
        )
