"""The agent's side of GetServers' ``trace`` (issue 17): which servers are traced, and the
bridge running the trace in the background and, without a broker, uploading it to the real
monitor-api's management API (or, with no way to upload, logging the JSON)."""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.real_api import register_agent
from agent.threads_helper import wait_for
from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.daemon.worker import traced_servers
from ntpmon.agent.mqtt.bridge import AgentMqttBridge, monitor_bridge
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.environments import DeployEnv
from ntpmon.db import admin
from ntpmon.db import traceroutes as tr
from ntpmon.db.api import get_monitors_by_tls_name
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


@pytest.mark.db
@pytest.mark.e2e
def test_without_a_broker_the_trace_is_uploaded(
    db: Engine,
    api_server: MonitorApiServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bridge ``ntppool-agent monitor`` builds, for a registered agent: a trace GetServers
    asked for (the worker's ``on_trace`` hook) reaches the real monitor-api's ``traceroutes``
    through the management API, the agent's API key and nothing else; no log fallback."""
    cfg = register_agent(db, api_server, tmp_path)
    cfg.load()
    now = datetime.now(UTC)
    with db.begin() as conn:
        (monitor_id,) = [m.id for m in get_monitors_by_tls_name(conn, tls_name=cfg.tls_name())]
        server_id = admin.create_server(conn, ip="127.0.0.1", now=now)
        admin.assign_monitor_to_servers(conn, monitor_id=monitor_id, now=now)
    bridge = monitor_bridge(cfg, "devel", port=123, allow_loopback=True, environ={})
    caplog.set_level(logging.INFO, logger="ntpmon.agent.mqtt.bridge")
    with NTPResponder("127.0.0.1") as responder:
        port = responder.port
        on_trace = bridge.hooks().on_trace
        assert on_trace is not None
        on_trace(ipaddress.ip_address("127.0.0.1"), CheckConfig(port=port, allow_loopback=True))
        ends = {"traceroute uploaded", "traceroute"}  # the latter: the log fallback
        wait_for(lambda: any(r.getMessage() in ends for r in caplog.records))
        bridge.close()
    assert [r.getMessage() for r in caplog.records if r.getMessage() in ends] == [
        "traceroute uploaded"
    ]
    with db.connect() as conn:
        (trace,) = tr.recent_traceroutes(conn, server_id=server_id)
    assert trace.monitor_id == monitor_id
    assert trace.reason == REASON_HEALTH
    assert trace.result.reached and trace.result.path() == ("127.0.0.1",)
    assert trace.result.port == port
