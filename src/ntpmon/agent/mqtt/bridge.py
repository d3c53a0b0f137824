"""The MQTT seam of ``ntppool-agent monitor`` (agent.md §13), without the MQTT client itself.

The runner needs the bridge from the start (worker hooks, the background task), but the client,
paho-mqtt and the connection manager (~1.2 MB resident, docs/agent.md, Memory footprint) only
once a GetConfig answer names a broker: :meth:`AgentMqttBridge.run` imports
:mod:`ntpmon.agent.mqtt.client` then. An agent without MQTT never loads them.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from ntpmon.agent.config.checkconfig import CheckConfig, MQTTSettings, apply_response
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.daemon.worker import WorkerHooks
from ntpmon.agent.mqtt.probe import (
    CheckFn,
    IPAddress,
    TraceOutcome,
    adhoc_probe,
    run_traceroute,
    traceroute_fn,
)
from ntpmon.common.environments import DeployEnv, parse_env
from ntpmon.mqttcm.takeover import TakeoverState
from ntpmon.ntp.instruments import ProbeInstruments
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.traceroute.result import REASON_HEALTH, TraceMessage

if TYPE_CHECKING:
    from ntpmon.agent.mqtt.client import AgentMqtt

log = logging.getLogger(__name__)


class AgentMqttBridge:
    """Connects :class:`AgentMqtt` to the agent runner without the runner knowing MQTT.

    * ``on_config`` (every worker's GetConfig answer) keeps each family's probe config and the
      MQTT settings (host, port, JWT; the prefix field is ignored, agent.md §13.1);
    * ``wait_if_paused`` is the takeover gate of the workers (§13.6);
    * ``run`` is the background task: once an MQTT config is known it starts the client (host
      and port read once), and stops it when the scope is cancelled. Its request spans and
      ad-hoc probes record on the telemetry instruments ``run`` is given, as the workers' do;
    * ``on_trace`` runs the traceroutes GetServers asks for (issue 17) on a thread of its own,
      one at a time, and publishes each on the MQTT data topic. Without a broker connection
      ``upload`` delivers it (the management API's ``POST /monitor/api/traceroute`` with the
      agent's API key, :func:`management_upload`), so the trace still reaches the database;
      when that fails too, or there is no ``upload``, the result goes to the agent's log: one
      ``traceroute`` record with the whole JSON document, which the OTLP log export (when
      configured) delivers to the pool's collector.

    ``tls`` builds the broker TLS context; None means plain TCP (devel only, the caller decides).
    """

    def __init__(
        self,
        env: DeployEnv,
        tls_name: Callable[[], str],
        tls: Callable[[], ssl.SSLContext] | None,
        *,
        check: CheckFn,
        port: int = 123,
        allow_loopback: bool = False,
        takeover: TakeoverState | None = None,
        topic_prefix: str = "",
        version: str | None = None,
        run_trace: Callable[[IPAddress, CheckConfig], TraceOutcome] = run_traceroute,
        upload: Callable[[TraceMessage], bool] | None = None,
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
        self._run_trace = run_trace
        self._upload = upload
        self._tracing: set[IPAddress] = set()
        self._trace_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="traceroute")

    def hooks(self) -> WorkerHooks:
        return WorkerHooks(
            on_config=self.on_config, wait_if_paused=self.wait_if_paused, on_trace=self.on_trace
        )

    def on_trace(self, ip: IPAddress, cfg: CheckConfig) -> None:
        """Queue one trace (never blocks the batch); a trace already queued for ``ip`` wins."""
        with self._lock:
            if ip in self._tracing:
                return
            self._tracing.add(ip)
        self._trace_pool.submit(self._trace_and_publish, ip, cfg)

    def _trace_and_publish(self, ip: IPAddress, cfg: CheckConfig) -> None:
        try:
            result, error = self._run_trace(ip, cfg)
            message = TraceMessage(result, error, REASON_HEALTH)
            client = self.client
            if client is not None and client.publish_traceroute(message):
                log.info("traceroute published", extra={"ip": str(ip), "error": error})
                return
            if self._upload is not None and self._upload(message):
                log.info("traceroute uploaded", extra={"ip": str(ip), "error": error})
                return
            log.info(
                "traceroute",
                extra={"ip": str(ip), "traceroute": message.to_payload().decode()},
            )
        finally:
            with self._lock:
                self._tracing.discard(ip)

    def close(self) -> None:
        """Finish the trace running now and drop the queued ones."""
        self._trace_pool.shutdown(wait=True, cancel_futures=True)

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

    def run(self, _cfg: object, scope: Scope, instruments: ProbeInstruments) -> None:
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
        from ntpmon.agent.mqtt.client import AgentMqtt, AgentMqttOptions  # paho: only now
        from ntpmon.mqttcm.connection import BrokerEndpoint

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
        recorded_check = partial(self._check, instruments=instruments)
        self.client = AgentMqtt(
            options,
            self.jwt,
            adhoc_probe(self.configs, recorded_check),
            takeover=self.takeover,
            tracer=instruments.tracer,
            traceroute=traceroute_fn(self.configs),
        )
        self.client.start()
        try:
            scope.wait()
        finally:
            self.client.stop()
            self.close()


def management_upload(cfg: Any) -> Callable[[TraceMessage], bool]:
    """The bridge's ``upload`` for ``cfg`` (an ``AppConfig``): the message, naming the agent's
    monitor, POSTed with the API key; False (logged) when there is no key or it is refused, so
    the bridge falls back to the log record and the trace is not lost silently."""
    from ntpmon.agent.config.mgmt import ManagementError

    def upload(message: TraceMessage) -> bool:
        management, key = cfg.management, cfg.api_key()
        if management is None or not key:
            return False
        claimed = replace(message, monitor=cfg.tls_name())
        try:
            management.upload_traceroute(key, claimed.to_payload())
        except ManagementError as exc:
            log.warning("traceroute upload failed", extra={"error": str(exc)})
            return False
        return True

    return upload


def monitor_bridge(
    cfg: Any, env: str, *, port: int, allow_loopback: bool, environ: Mapping[str, str]
) -> AgentMqttBridge:
    """The bridge ``ntppool-agent monitor`` uses: ``cfg`` is its ``AppConfig``.

    TLS with the state directory's client certificate (system roots plus ``ca.pem``); with env
    ``devel`` and ``MONITOR_MQTT_PLAIN=true``, plain TCP for a broker on loopback.
    """
    from ntpmon.ntp.check import check_host

    deploy_env = parse_env(env)
    plain = deploy_env is DeployEnv.DEVEL and environ.get("MONITOR_MQTT_PLAIN", "").lower() in {
        "1",
        "true",
        "yes",
    }

    def tls() -> ssl.SSLContext:
        from ntpmon.agent.mqtt.client import agent_tls_context

        return agent_tls_context(cfg.ca_path, cfg.cert_path, cfg.key_path)

    return AgentMqttBridge(
        deploy_env,
        cfg.tls_name,
        None if plain else tls,
        check=check_host,
        port=port,
        allow_loopback=allow_loopback,
        upload=management_upload(cfg),
    )
