"""Traceroutes over the real Mosquitto (issue 17, item 3): ``POST /check/traceroute/<ip>`` routed
to agents, agents' own traces published on their data topic, both stored by monitor-api (on
MariaDB and SQLite), and refused when malformed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from mqtt_testkit import SHARED_BROKER, running_agent, running_server, unique_name, wait_for
from sqlalchemy import Engine, select

from ntpmon.agent.config.checkconfig import CheckConfig
from ntpmon.agent.mqtt.probe import traceroute_fn
from ntpmon.api.mqserver.service import monitor_loader
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import traceroutes
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.traceroute.result import REASON_HEALTH, TraceMessage, from_json

pytestmark = [pytest.mark.e2e, pytest.mark.db]


@dataclass
class DbMonitors:
    """monitor-api's real loader over the test database."""

    engine: Engine

    def load(self, name: str):
        return monitor_loader(self.engine)(name)


def stored(db: Engine) -> list[dict]:
    with db.connect() as conn:
        return [
            dict(r._mapping) for r in conn.execute(select(traceroutes).order_by(traceroutes.c.id))
        ]


def test_requested_and_published_traceroutes_are_answered_and_stored(
    db: Engine, prefix: str, responder: NTPResponder
) -> None:
    name = unique_name()
    now = datetime(2026, 11, 26, 12, 0)
    with db.begin() as conn:
        monitor_id = admin.create_monitor(
            conn, tls_name=name, ip="192.0.2.40", now=now, status=MonitorStatus.ACTIVE
        )
        server_id = admin.create_server(conn, ip="127.0.0.1", now=now)
    cfg = CheckConfig(port=responder.port, allow_loopback=True)
    tracer = traceroute_fn(lambda: [cfg])
    with (
        running_server(SHARED_BROKER, prefix, DbMonitors(db), engine=db) as api,
        running_agent(SHARED_BROKER, prefix, name, lambda ip: None, traceroute=tracer) as agent,
    ):
        wait_for(lambda: api.mq.clients.adhoc_targets("v4"), what="agent online with monitor data")
        base = f"http://127.0.0.1:{api.http.port}"
        reply = httpx.post(f"{base}/check/traceroute/127.0.0.1", timeout=60)
        assert reply.status_code == 200
        (answer,) = reply.json()
        assert answer["Server"] == name.split(".")[0]
        assert "Error" not in answer
        result = from_json(answer["Traceroute"])
        assert result.reached
        assert result.path() == ("127.0.0.1",)
        assert result.port == responder.port
        assert responder.requests >= 1  # the probes were NTP requests the responder answered

        # a trace the agent ran because GetServers said so: published on its own
        own = TraceMessage(result, "", REASON_HEALTH)
        assert agent.publish_traceroute(own)
        rows = wait_for(lambda: len(stored(db)) == 2 and stored(db), what="two stored traces")
        assert [r["reason"] for r in rows] == ["request", "health"]
        for row in rows:
            assert (row["monitor_id"], row["server_id"]) == (monitor_id, server_id)
            assert row["reached"]
            assert row["hops"] == 1
            assert from_json(json.loads(row["result"])).path() == ("127.0.0.1",)

        # malformed data is refused, not stored
        store = api.mq._traceroutes
        topic = api.mq.topics.traceroute_result(name, "01JUNK")
        agent.connection.publish(topic, b'{"Traceroute": {"v": 99}}', qos=1)
        wait_for(lambda: store.refused == 1, what="the malformed trace refused")
        assert len(stored(db)) == 2

        # no agent monitors IPv6: nobody is asked, the answer is an empty list
        assert httpx.post(f"{base}/check/traceroute/::1", timeout=60).json() == []
        assert httpx.post(f"{base}/check/traceroute/nonsense", timeout=60).status_code == 400
        assert agent.handled["traceroute"] == 1
