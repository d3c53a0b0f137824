"""monitor-api's connection to the broker (api.md §10.3): subscribe ``P/#``, feed the client map
and the response router, publish requests to agents.

Status messages may need a database query, so they are processed in order on one worker
thread; responses go straight to the router, which never blocks. Nothing here runs on the
MQTT network thread for longer than a queue put.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paho.mqtt.client as paho

from ntpmon.api.mqserver.broker_tokens import server_token
from ntpmon.api.mqserver.clients import ClientRegistry, ClientState
from ntpmon.api.mqserver.router import ResponseRouter
from ntpmon.common.clock import Clock
from ntpmon.common.environments import DeployEnv
from ntpmon.mqttcm.connection import (
    BrokerEndpoint,
    ConnectionManager,
    SessionOptions,
    Subscription,
    publish_properties,
    user_property,
)
from ntpmon.mqttcm.status import StatusDecodeError, decode_status
from ntpmon.mqttcm.takeover import DEFAULT_DELAYS, DEFAULT_STABILITY_WINDOW, TakeoverState
from ntpmon.mqttcm.topics import Topics, client_id_from_name

log = logging.getLogger(__name__)

TracerouteSink = Callable[[ClientState | None, str, bytes], object]
"""Stores one published traceroute: (the agent's client state, its name, the raw payload)."""


@dataclass(frozen=True, slots=True)
class TraceIds:
    """W3C-style ids carried as MQTT user properties (``TraceID``/``SpanID``, hex)."""

    trace_id: str
    span_id: str

    @classmethod
    def new(cls) -> TraceIds:
        return cls(secrets.token_hex(16), secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class MqServerSettings:
    """Everything the MQTT side of monitor-api needs.

    ``server_name`` is the first DNS SAN of the server certificate (``api.devel.mon.ntppool.dev``);
    the username, the JWT subject and (cut before ``.mon.ntppool.dev``) the client id derive
    from it. ``client_id`` overrides the latter (tests run several servers on one broker).
    """

    env: DeployEnv
    server_name: str
    endpoint: BrokerEndpoint
    jwt_key: str
    client_id: str = ""
    topic_prefix: str = ""
    allow_private_targets: bool = False
    check_deadline_s: float = 8.0
    traceroute_deadline_s: float = 40.0
    send_pause_s: float = 0.4
    reconnect_delays: tuple[float, ...] = DEFAULT_DELAYS
    stability_window_s: float = DEFAULT_STABILITY_WINDOW


class MqServer:
    """The broker connection plus the handlers for status and data topics."""

    def __init__(
        self,
        settings: MqServerSettings,
        clients: ClientRegistry,
        router: ResponseRouter,
        clock: Clock,
        *,
        traceroutes: TracerouteSink | None = None,
    ) -> None:
        """``traceroutes`` stores every traceroute an agent publishes (None: not stored)."""
        self.settings = settings
        self._traceroutes = traceroutes
        self.topics = Topics(settings.env, settings.topic_prefix)
        self.clients = clients
        self.router = router
        self._clock = clock
        self._status_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mq-status")
        session = SessionOptions(
            client_id=settings.client_id or client_id_from_name(settings.server_name),
            username=settings.server_name,
            clean_start=True,
        )
        self.connection = ConnectionManager(
            settings.endpoint,
            session,
            self._password,
            takeover=TakeoverState(settings.stability_window_s, delays=settings.reconnect_delays),
            subscriptions=[
                Subscription(self.topics.all_status(), 1, self._on_status, no_local=True),
                Subscription(self.topics.all_data(), 1, self._on_data, no_local=True),
            ],
            name="monitor-api",
        )

    def start(self) -> None:
        self.connection.start()

    def stop(self) -> None:
        self.connection.stop()
        self._status_worker.shutdown(wait=True, cancel_futures=True)

    def _password(self) -> str:
        return server_token(self.settings.server_name, self.settings.jwt_key, self._clock.now())

    # -- network thread ---------------------------------------------------------------------
    def _on_status(self, message: paho.MQTTMessage) -> None:
        key = self.topics.parse_status_topic(message.topic)
        if key is None:
            return
        self._status_worker.submit(self._apply_status, key, bytes(message.payload))

    def _on_data(self, message: paho.MQTTMessage) -> None:
        traced = self.topics.parse_traceroute_topic(message.topic)
        if traced is not None:
            name, result_id = traced
            payload = bytes(message.payload)
            if self._traceroutes is not None:
                self._status_worker.submit(self._store_traceroute, name, payload)
            self.router.offer(
                name,
                result_id,
                payload,
                trace_id=user_property(message, "TraceID"),
                span_id=user_property(message, "SpanID"),
            )
            return
        self.router.deliver(
            message.topic,
            message.payload,
            trace_id=user_property(message, "TraceID"),
            span_id=user_property(message, "SpanID"),
        )

    # -- status worker ----------------------------------------------------------------------
    def _apply_status(self, key: str, payload: bytes) -> None:
        try:
            status = decode_status(payload)
        except StatusDecodeError as exc:
            log.warning("undecodable agent status", extra={"client": key, "error": str(exc)})
            return
        state = self.clients.apply_status(key, status)
        log.debug(
            "agent status", extra={"client": key, "online": state.online, "version": state.version}
        )

    def _store_traceroute(self, name: str, payload: bytes) -> None:
        """On the status worker: the client map is current there (statuses are in order)."""
        if self._traceroutes is not None:
            self._traceroutes(self.clients.get(name), name, payload)

    # -- requests ---------------------------------------------------------------------------
    def publish_request(
        self,
        name: str,
        request_type: str,
        payload: bytes,
        request_id: str,
        trace: TraceIds,
        *,
        response_topic: str = "",
    ) -> bool:
        """Send one request to agent ``name``, answers to ``P/data/NAME/<request_id>``
        unless ``response_topic`` names another."""
        props = publish_properties(
            response_topic=response_topic or self.topics.data_response(name, request_id),
            user_properties=[
                ("ID", request_id),
                ("TraceID", trace.trace_id),
                ("SpanID", trace.span_id),
            ],
        )
        info = self.connection.publish(
            self.topics.request(name, request_type), payload, qos=0, properties=props
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            log.warning(
                "publishing request failed",
                extra={"client": name, "request_id": request_id, "rc": int(info.rc)},
            )
            return False
        return True
