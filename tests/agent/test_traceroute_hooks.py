"""The agent's side of GetServers' ``trace`` (issue 17): which servers are traced, and the
bridge running the trace in the background and, without a broker, logging the JSON."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest

from agent.threads_helper import wait_for
from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.daemon.worker import traced_servers
from ntpmon.agent.mqtt.bridge import AgentMqttBridge
from ntpmon.common.environments import DeployEnv
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.traceroute.result import REASON_HEALTH, decode_message


def test_only_servers_marked_trace_are_traced() -> None:
    servers = [
        pb.Server(ip_bytes=ipaddress.ip_address("192.0.2.1").packed, trace=True),
        pb.Server(ip_bytes=ipaddress.ip_address("192.0.2.2").packed),
        pb.Server(ip_bytes=ipaddress.ip_address("2001:db8::3").packed, trace=True),
        pb.Server(ip_bytes=b"", trace=True),
    ]
    assert traced_servers(servers) == [
        ipaddress.ip_address("192.0.2.1"),
        ipaddress.ip_address("2001:db8::3"),
    ]


def test_without_a_broker_the_trace_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    bridge = AgentMqttBridge(DeployEnv.DEVEL, lambda: "a.devel.mon.ntppool.dev", None, check=print)
    caplog.set_level(logging.INFO, logger="ntpmon.agent.mqtt.bridge")
    with NTPResponder("127.0.0.1") as responder:
        cfg = CheckConfig(port=responder.port, allow_loopback=True)
        ip = ipaddress.ip_address("127.0.0.1")
        port = responder.port
        bridge.on_trace(ip, cfg)
        wait_for(lambda: any(r.getMessage() == "traceroute" for r in caplog.records))
        bridge.close()
    (record,) = [r for r in caplog.records if r.getMessage() == "traceroute"]
    message = decode_message(record.traceroute.encode())  # type: ignore[attr-defined]
    assert message.reason == REASON_HEALTH
    assert message.result is not None
    assert message.result.reached
    assert message.result.path() == ("127.0.0.1",)
    assert json.loads(record.traceroute)["Traceroute"]["port"] == port  # type: ignore[attr-defined]
    assert responder.requests >= 1
