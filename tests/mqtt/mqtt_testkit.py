"""Helpers for tests against a real Mosquitto: unique names and prefixes, running servers and
agents, a private broker that can be restarted, and a raw subscriber for retained messages."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ntpmon.agent.mqtt.client import AgentMqtt, AgentMqttOptions
from ntpmon.agent.mqtt.probe import AdhocProbe, TraceFn, adhoc_probe
from ntpmon.api.mqserver.broker import MqServerSettings
from ntpmon.api.mqserver.service import InternalApi, build_internal_api
from ntpmon.common.clock import SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.version import version
from ntpmon.db.models import Monitor
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.mqttcm.takeover import TakeoverState
from ntpmon.ntp.check import ProbeConfig, check_host

SHARED_BROKER = BrokerEndpoint("127.0.0.1", 1883)
FAST_DELAYS = (0.2, 0.5, 1.0, 1.0, 1.0)
SERVER_NAME = "api.devel.mon.ntppool.dev"
AGENT_VERSION = version()  # >= v4.0.4, the minimum for ad-hoc requests


def unique_prefix() -> str:
    return f"/t{secrets.token_hex(6)}/monitors"


def unique_name() -> str:
    return f"t{secrets.token_hex(3)}-{secrets.token_hex(3)}.devel.mon.ntppool.dev"


def monitor_row(name: str, ip: str, *, row_id: int = 1, account_id: int | None = 7) -> Monitor:
    """A ``monitors`` row as the database layer returns it."""
    return Monitor(
        id=row_id,
        id_token=None,
        type="monitor",
        user_id=None,
        account_id=account_id,
        hostname=name.split(".", 1)[0],
        location="",
        ip=ip,
        ip_version="v6" if ":" in ip else "v4",
        tls_name=name,
        api_key=None,
        status="active",
        config="{}",
        client_version="",
        last_seen=None,
        last_submit=None,
        created_on=datetime(2026, 1, 1, tzinfo=UTC),
        deleted_on=None,
        is_current=1,
    )


class MonitorSource(Protocol):
    """Anything that loads the monitor rows of a name (a table here, or the real database)."""

    def load(self, name: str) -> Sequence[Monitor]: ...


@dataclass
class MonitorTable:
    """The rows monitor-api would load for each name (the DB loader is tested on its own)."""

    rows: dict[str, list[Monitor]] = field(default_factory=dict)

    def add(self, name: str, *ips: str) -> None:
        self.rows[name] = [monitor_row(name, ip, row_id=i + 1) for i, ip in enumerate(ips)]

    def load(self, name: str) -> Sequence[Monitor]:
        return list(self.rows.get(name, []))


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def running_server(
    endpoint: BrokerEndpoint,
    prefix: str,
    monitors: MonitorTable | MonitorSource,
    *,
    engine: Engine | None = None,
    **overrides: Any,
) -> Iterator[InternalApi]:
    settings = MqServerSettings(
        env=DeployEnv.DEVEL,
        server_name=SERVER_NAME,
        endpoint=endpoint,
        jwt_key="t-key-for-tests-only-0123456789-0123456789-01234567",
        client_id=f"api.devel-{secrets.token_hex(4)}",
        topic_prefix=prefix,
        allow_private_targets=True,
        reconnect_delays=FAST_DELAYS,
    )
    settings = replace(settings, **overrides)
    api = build_internal_api(
        settings,
        load_monitors=monitors.load,
        registry=CollectorRegistry(),
        clock=SystemClock(),
        engine=engine,
    )
    api.start("127.0.0.1:0")
    try:
        assert api.mq.connection.wait_connected(10), "monitor-api did not connect to the broker"
        yield api
    finally:
        api.stop()


def probe_for(port: int) -> AdhocProbe:
    """The real ``check_host`` against a responder on loopback (devel knobs on)."""
    cfg = ProbeConfig(samples=3, ip=None, port=port, allow_loopback=True)
    return adhoc_probe(lambda: [cfg], check_host)


@contextlib.contextmanager
def running_agent(
    endpoint: BrokerEndpoint,
    prefix: str,
    name: str,
    probe: AdhocProbe,
    *,
    takeover: TakeoverState | None = None,
    wait: bool = True,
    status_interval_s: float = 300.0,
    traceroute: TraceFn | None = None,
) -> Iterator[AgentMqtt]:
    options = AgentMqttOptions(
        env=DeployEnv.DEVEL,
        name=name,
        endpoint=endpoint,
        topic_prefix=prefix,
        will_delay_s=1,
        version=AGENT_VERSION,
        status_interval_s=status_interval_s,
    )
    agent = AgentMqtt(
        options,
        lambda: b"unused-by-an-anonymous-broker",
        probe,
        takeover=takeover or TakeoverState(1.0, delays=FAST_DELAYS),
        traceroute=traceroute,
    )
    agent.start()
    try:
        if wait:
            assert agent.connection.wait_connected(10), f"agent {name} did not connect"
        yield agent
    finally:
        agent.stop()


class Watcher:
    """A raw paho subscriber that records every message (retained ones included)."""

    def __init__(self, endpoint: BrokerEndpoint, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watch-{secrets.token_hex(4)}",
            protocol=paho.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.connect(endpoint.host, endpoint.port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m[1] for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def online_entries(api: InternalApi) -> dict[str, bool]:
    """``GET /monitors/online`` as name → online."""
    entries = httpx.get(f"http://127.0.0.1:{api.http.port}/monitors/online").json()
    return {e["Name"]: e["Online"] for e in entries}
