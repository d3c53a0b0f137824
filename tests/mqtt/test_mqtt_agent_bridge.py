"""The agent runner's seam for MQTT: ``AgentMqttBridge`` fed by GetConfig answers, started as
a background task, answering ad-hoc checks through a real monitor-api side (agent.md §13)."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from mqtt_testkit import (
    AGENT_VERSION,
    SHARED_BROKER,
    MonitorTable,
    online_entries,
    running_server,
    unique_name,
    wait_for,
)

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.mqtt.bridge import AgentMqttBridge, monitor_bridge
from ntpmon.api.ca import EmbeddedCA
from ntpmon.common.environments import DeployEnv
from ntpmon.mqttcm.takeover import SESSION_TAKEN_OVER, TakeoverState
from ntpmon.ntp.check import check_host
from ntpmon.ntp.instruments import NO_PROBE_INSTRUMENTS
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.testing.otel import RecordingTelemetry

pytestmark = pytest.mark.e2e


def config_answer(ip: str, port: int = SHARED_BROKER.port) -> pb.GetConfigResponse:
    return pb.GetConfigResponse(
        samples=4,
        ip_bytes=ipaddress.ip_address(ip).packed,
        base_checks=[b"ntp.example"],
        mqtt_config=pb.MQTTConfig(
            host=SHARED_BROKER.host.encode(), port=port, jwt=b"jwt-1", prefix=b"/ignored"
        ),
    )


def bridge_for(name: str, prefix: str, responder_port: int, **extra: object) -> AgentMqttBridge:
    return AgentMqttBridge(
        DeployEnv.DEVEL, lambda: name, None, check=check_host, port=responder_port,
        allow_loopback=True, topic_prefix=prefix, version=AGENT_VERSION, **extra,
    )  # fmt: skip


def test_bridge_starts_on_config_and_answers_checks(
    prefix: str, monitors: MonitorTable, responder: NTPResponder
) -> None:
    name = unique_name()
    monitors.add(name, "192.0.2.80")
    bridge = bridge_for(name, prefix, responder.port)
    recording = RecordingTelemetry()
    scope = Scope()
    task = threading.Thread(target=bridge.run, args=(None, scope, recording.instruments))
    task.start()
    try:
        with running_server(SHARED_BROKER, prefix, monitors) as api:
            bridge.on_config(4, config_answer("127.0.0.1"))
            assert bridge.jwt() == b"jwt-1"
            assert [c.samples for c in bridge.configs()] == [4]
            wait_for(lambda: online_entries(api).get(name), what="bridge agent online")
            answers = httpx.post(
                f"http://127.0.0.1:{api.http.port}/check/ntp/127.0.0.1", timeout=15
            ).json()
            assert [a["NTP"]["Stratum"] for a in answers] == [responder.settings.stratum]
            assert responder.requests == 1  # one sample, not the config's four
            # recorded on the telemetry the runner hands in, the probe under the request's span
            # (which ends after the reply is published: under load the reply can come first)
            [request_span] = wait_for(lambda: recording.spans("mqtt-ntp"), what="request span")
            [check_span] = recording.spans("monitor.CheckHost")
            assert check_span.parent is not None
            assert check_span.parent.span_id == request_span.context.span_id
            assert (check_span.attributes or {})["ip"] == "127.0.0.1"
            assert recording.points("monitor.ntp_queries_sent_total") == [
                ({"ip_version": "ipv4"}, 1)
            ]
            bridge.hooks().wait_if_paused(scope)  # not paused: returns at once
            scope.cancel()
            task.join(10)
            assert not task.is_alive()
            wait_for(lambda: online_entries(api).get(name) is False, what="offline on stop")
    finally:
        scope.cancel()
        task.join(10)
        recording.shutdown()


def test_bridge_without_mqtt_config_stops_with_scope() -> None:
    bridge = bridge_for(unique_name(), "/unused/monitors", 123)
    answer = config_answer("192.0.2.1")
    answer.ClearField("mqtt_config")
    bridge.on_config(4, answer)
    scope = Scope()
    task = threading.Thread(target=bridge.run, args=(None, scope, NO_PROBE_INSTRUMENTS))
    task.start()
    scope.cancel()
    task.join(10)
    assert not task.is_alive()
    assert bridge.client is None


def test_wait_if_paused_blocks_until_cancelled() -> None:
    takeover = TakeoverState(3600)
    takeover.record_disconnect(SESSION_TAKEN_OVER)
    bridge = bridge_for(unique_name(), "/unused/monitors", 123, takeover=takeover)
    scope = Scope()
    waiter = threading.Thread(target=bridge.wait_if_paused, args=(scope,))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # paused while another client holds the session
    scope.cancel()
    waiter.join(10)
    assert not waiter.is_alive()
    assert takeover.in_backoff()
    takeover.close()


@pytest.mark.parametrize(
    ("env", "environ", "plain"),
    [
        ("devel", {"MONITOR_MQTT_PLAIN": "true"}, True),
        ("devel", {"MONITOR_MQTT_PLAIN": "1"}, True),
        ("devel", {}, False),
        ("prod", {"MONITOR_MQTT_PLAIN": "true"}, False),
        ("test", {"MONITOR_MQTT_PLAIN": "yes"}, False),
    ],
)
def test_monitor_bridge_plain_tcp_only_in_devel(
    env: str, environ: dict[str, str], plain: bool, tmp_path: Path
) -> None:
    cfg = AppConfig(DeploymentEnv(env), tmp_path, management=None)
    bridge = monitor_bridge(cfg, env, port=123, allow_loopback=False, environ=environ)
    assert bridge.env.value == env
    assert (bridge.tls_factory is None) is plain
    if bridge.tls_factory is not None:
        ca = EmbeddedCA.create("bridge CA")
        issued = ca.issue_client(f"h-1.{env}.mon.ntppool.dev", timedelta(hours=1))
        cfg.cert_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.cert_path.write_text(issued.cert_pem)
        cfg.key_path.write_text(issued.key_pem)
        cfg.ca_path.write_text(ca.root_pem())
        context = bridge.tls_factory()
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
