"""How ``monitor-api server`` switches its MQTT side on (api.md §10.3, §11).

:func:`start_internal_api` is the one call the server needs: it derives the broker identity from
the server certificate's first DNS name, connects (TLS with the server certificate as client
certificate, or plain TCP for a loopback broker in devel), and serves the internal HTTP API on
loopback unless told otherwise. With MQTT disabled (``--no-mqtt``, or no JWT key) the internal
API still answers, from an empty client map: api.md §10.3 makes ``--no-mqtt`` skip the broker
only, so ``/monitors/online`` is ``[]`` and ``/check/ntp/<ip>`` finds no agent to ask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ntpmon.api.mqserver.broker import MqServerSettings
from ntpmon.api.mqserver.service import (
    DEFAULT_INTERNAL_LISTEN,
    InternalApi,
    build_internal_api,
    monitor_loader,
    parse_listen,
)
from ntpmon.common.clock import Clock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.errors import NtpmonError
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.mqttcm.tlsconfig import broker_tls_context

log = logging.getLogger(__name__)


class MqttConfigError(NtpmonError, ValueError):
    """MQTT options that cannot work together."""


@dataclass(frozen=True, slots=True)
class MqttServerOptions:
    """The ``monitor-api server`` flags for the MQTT side.

    ``plain`` (no TLS) is accepted only in devel, for a broker on loopback. ``ca_pem`` is the
    broker's CA bundle (the system roots when empty); ``cert_file``/``key_file`` are the server
    certificate presented as client certificate.
    """

    enabled: bool = True
    host: str = "mqtt.ntppool.net"
    port: int = 1883
    jwt_key: str = ""
    plain: bool = False
    ca_pem: str = ""
    cert_file: Path | None = None
    key_file: Path | None = None
    internal_listen: str = DEFAULT_INTERNAL_LISTEN
    topic_prefix: str = ""

    def check(self, env: DeployEnv) -> None:
        """Refuse options that cannot work, before anything is started."""
        parse_listen(self.internal_listen)
        if not self.enabled:
            return
        if not self.jwt_key:
            raise MqttConfigError("MQTT needs a JWT key (JWT_KEY / --jwtkey) or --no-mqtt")
        if self.plain and env is not DeployEnv.DEVEL:
            raise MqttConfigError("a plain-TCP MQTT connection is only allowed in devel")


def broker_endpoint(options: MqttServerOptions) -> BrokerEndpoint:
    """TLS (verifying the broker, presenting our certificate) unless ``plain``."""
    if options.plain:
        return BrokerEndpoint(options.host, options.port)
    tls = broker_tls_context(
        options.ca_pem or None, cert_file=options.cert_file, key_file=options.key_file
    )
    return BrokerEndpoint(options.host, options.port, tls)


def start_internal_api(
    options: MqttServerOptions,
    *,
    engine: Engine,
    env: DeployEnv,
    server_name: str,
    registry: CollectorRegistry,
    clock: Clock,
) -> InternalApi:
    """Serve the internal API and, unless MQTT is disabled, connect to the broker (in the
    background).

    A broker that is down at start is retried, never fatal (api.md §10.3). Configuration
    errors (no JWT key, plain TCP outside devel) are raised before anything starts.
    """
    options.check(env)
    if not options.enabled:
        log.info("MQTT disabled: the internal API answers without agents")
    settings = MqServerSettings(
        env=env,
        server_name=server_name,
        # never connected while disabled: no TLS context to build from absent files
        endpoint=(
            broker_endpoint(options)
            if options.enabled
            else BrokerEndpoint(options.host, options.port)
        ),
        jwt_key=options.jwt_key,
        topic_prefix=options.topic_prefix,
        allow_private_targets=False,
    )
    api = build_internal_api(
        settings,
        load_monitors=monitor_loader(engine),
        registry=registry,
        clock=clock,
        engine=engine,
    )
    api.start(options.internal_listen, connect=options.enabled)
    return api
