"""Agent and monitor-api against the real Mosquitto (issue 8): online/offline status, ad-hoc
checks through agents with the real NTP engine, late answers, session takeover, broker restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import paho.mqtt.client as paho
import pytest
from mqtt_testkit import (
    FAST_DELAYS,
    SHARED_BROKER,
    MonitorTable,
    Watcher,
    probe_for,
    running_agent,
    running_server,
    unique_name,
    wait_for,
)
from paho.mqtt.enums import CallbackAPIVersion
from scripted_broker import ScriptedBroker

from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.mqttcm.status import decode_status
from ntpmon.mqttcm.takeover import TakeoverState
from ntpmon.mqttcm.topics import Topics, client_id_from_name
from ntpmon.testing.mosquitto import PrivateBroker
from ntpmon.testing.ntpserver import NTPResponder

pytestmark = pytest.mark.e2e


def url(api, path: str) -> str:
    return f"http://127.0.0.1:{api.http.port}{path}"


def raw_client(client_id: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.connect(SHARED_BROKER.host, SHARED_BROKER.port)
    client.loop_start()
    return client


def online_names(api) -> dict[str, bool]:
    entries = httpx.get(url(api, "/monitors/online")).json()
    return {e["Name"]: e["Online"] for e in entries}


AGENT_PROCESS = """
import sys, threading
from ntpmon.agent.mqtt.client import AgentMqtt, AgentMqttOptions
from ntpmon.common.environments import DeployEnv
from ntpmon.mqttcm.connection import BrokerEndpoint
opts = AgentMqttOptions(env=DeployEnv.DEVEL, name=sys.argv[1], topic_prefix=sys.argv[2],
                        endpoint=BrokerEndpoint("127.0.0.1", int(sys.argv[3])), will_delay_s=1,
                        version="v4.2.0")
agent = AgentMqtt(opts, lambda: b"x", lambda ip: None)
agent.start()
agent.connection.wait_connected(10)
print("up", flush=True)
threading.Event().wait()
"""


def test_online_status_retained_and_last_will_after_crash(
    prefix: str, monitors: MonitorTable
) -> None:
    name = unique_name()
    monitors.add(name, "192.0.2.10")
    topic = Topics("devel", prefix).status(name)
    with running_server(SHARED_BROKER, prefix, monitors) as api:
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT_PROCESS, name, prefix, str(SHARED_BROKER.port)],
            stdout=subprocess.PIPE,
        )
        try:
            assert agent.stdout is not None and agent.stdout.readline() == b"up\n"
            wait_for(lambda: online_names(api).get(name) is True, what="agent online")
            # a newcomer gets the retained online status straight away
            late = Watcher(SHARED_BROKER, topic)
            wait_for(lambda: late.messages, what="retained status")
            late.close()
            t, payload, retained = late.messages[0]
            assert (t, retained) == (topic, True)
            assert decode_status(payload).online is True
        finally:
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(10)
        # the broker publishes the will (offline) after its 1 s delay
        wait_for(lambda: online_names(api).get(name) is False, what="will: offline")
        entry = httpx.get(url(api, "/monitors/online")).json()[0]
        assert entry["IpVersion"] == "v4"
        assert entry["Version"]["Version"] == "v4.2.0"
    after = Watcher(SHARED_BROKER, topic)
    wait_for(lambda: after.messages, what="retained offline status")
    after.close()
    assert decode_status(after.messages[0][1]).online is False


def test_clean_stop_announces_offline(prefix: str, monitors: MonitorTable) -> None:
    name = unique_name()
    monitors.add(name, "192.0.2.11", "2001:db8::11")
    with running_server(SHARED_BROKER, prefix, monitors) as api:
        with running_agent(SHARED_BROKER, prefix, name, lambda ip: None):
            wait_for(lambda: online_names(api).get(name) is True, what="online")
            entry = httpx.get(url(api, "/monitors/online")).json()[0]
            assert entry["IpVersions"] == ["v4", "v6"] and "IpVersion" not in entry
        wait_for(lambda: online_names(api).get(name) is False, what="offline")


def test_adhoc_check_through_two_agents(
    prefix: str, monitors: MonitorTable, responder: NTPResponder
) -> None:
    names = [unique_name(), unique_name()]
    for n in names:
        monitors.add(n, "192.0.2.20")
    with (
        running_server(SHARED_BROKER, prefix, monitors) as api,
        running_agent(SHARED_BROKER, prefix, names[0], probe_for(responder.port)),
        running_agent(SHARED_BROKER, prefix, names[1], probe_for(responder.port)),
    ):
        wait_for(lambda: sum(online_names(api).values()) == 2, what="two agents online")
        reply = httpx.post(url(api, "/check/ntp/127.0.0.1"), timeout=15)
        assert reply.status_code == 200
        assert reply.headers["Traceparent"]
        answers = reply.json()
        assert sorted(a["Server"] for a in answers) == sorted(n.split(".")[0] for n in names)
        for answer in answers:
            assert "Error" not in answer
            assert answer["NTP"]["Stratum"] == responder.settings.stratum
            assert isinstance(answer["NTP"]["RTT"], int) and answer["NTP"]["RTT"] >= 0
        # one sample per agent: the ad-hoc probe copies the config with samples = 1
        assert responder.requests == 2
        # an IPv6 target has no eligible agent (both are v4-only)
        assert httpx.post(url(api, "/check/ntp/2001:db8::1"), timeout=15).json() == []


def test_late_answer_does_not_wedge_router(
    prefix: str, monitors: MonitorTable, responder: NTPResponder
) -> None:
    slow, fast = unique_name(), unique_name()
    monitors.add(slow, "192.0.2.30")
    release = threading.Event()
    real_probe = probe_for(responder.port)

    def slow_probe(ip):
        release.wait(10)
        return real_probe(ip)

    with (
        running_server(SHARED_BROKER, prefix, monitors, check_deadline_s=0.5) as api,
        running_agent(SHARED_BROKER, prefix, slow, slow_probe),
    ):
        wait_for(lambda: online_names(api).get(slow), what="slow agent online")
        first = httpx.post(url(api, "/check/ntp/127.0.0.1?all=true"), timeout=15)
        assert first.json() == []
        assert api.mq.router.pending() == 0
        release.set()
        # the answer arrives after the requester gave up: dropped, nothing blocks
        wait_for(lambda: api.mq.router.dropped >= 1, what="late answer dropped")
        monitors.add(fast, "192.0.2.31")
        with running_agent(SHARED_BROKER, prefix, fast, real_probe):
            wait_for(lambda: online_names(api).get(fast), what="fast agent online")
            release.clear()  # the slow agent is stuck again; the fast one must still answer
            second = httpx.post(url(api, "/check/ntp/127.0.0.1?all=1"), timeout=15).json()
            release.set()
            assert [a["Server"] for a in second] == [fast.split(".")[0]]
            assert second[0]["NTP"]["Stratum"] == responder.settings.stratum


def test_same_client_id_on_mosquitto_never_makes_the_agent_spin(
    prefix: str, monitors: MonitorTable
) -> None:
    """A second client with the agent's client id on the real broker: the agent is thrown out,
    waits its reconnect delay, takes the session back, and never reconnects in a tight loop."""
    name = unique_name()
    takeover = TakeoverState(1.0, delays=(0.5, 1.0))
    with running_agent(SHARED_BROKER, prefix, name, lambda ip: None, takeover=takeover) as agent:
        intruder = raw_client(client_id_from_name(name))
        try:
            wait_for(lambda: agent.connection.connections >= 2, what="agent back after takeover")
            time.sleep(1.5)
            # ping-pong with the intruder is paced by the delay: ≤ one reconnect per 0.5 s
            assert agent.connection.connections <= 2 + 1.5 / 0.5 + 1
        finally:
            intruder.loop_stop()
            intruder.disconnect()


def test_session_takeover_pauses_ntp_work(prefix: str) -> None:
    """A broker that sends DISCONNECT 0x8E on a takeover (newer Mosquitto, as in production):
    back-off, NTP work paused, reconnect after the delay, resumed after the stability window."""
    broker = ScriptedBroker()
    name = unique_name()
    takeover = TakeoverState(1.0, delays=FAST_DELAYS)
    endpoint = BrokerEndpoint("127.0.0.1", broker.port)
    try:
        with running_agent(endpoint, prefix, name, lambda ip: None, takeover=takeover) as agent:
            assert not agent.ntp_paused()
            assert agent.wait_ntp_allowed(timeout=0) is True
            broker.take_over()
            wait_for(agent.ntp_paused, what="takeover back-off")
            assert takeover.takeover_count == 1
            assert agent.wait_ntp_allowed(timeout=0.05) is False
            wait_for(lambda: broker.connects >= 2, what="reconnect after the back-off delay")
            # still paused right after the reconnect: the stability window has to pass first
            assert agent.wait_ntp_allowed(timeout=10) is True
            assert not agent.ntp_paused()
            assert takeover.reconnect_delay() == FAST_DELAYS[0]
    finally:
        broker.close()


def test_broker_restart_both_sides_reconnect(
    prefix: str, monitors: MonitorTable, responder: NTPResponder, private_broker: PrivateBroker
) -> None:
    name = unique_name()
    monitors.add(name, "192.0.2.40")
    endpoint = private_broker.endpoint
    with (
        running_server(endpoint, prefix, monitors) as api,
        running_agent(endpoint, prefix, name, probe_for(responder.port)) as agent,
    ):
        wait_for(lambda: online_names(api).get(name), what="online before restart")
        assert len(httpx.post(url(api, "/check/ntp/127.0.0.1"), timeout=15).json()) == 1
        private_broker.stop()
        wait_for(lambda: not agent.connection.is_connected(), what="agent sees broker gone")
        wait_for(lambda: not api.mq.connection.is_connected(), what="server sees broker gone")
        private_broker.start()  # same port, no persistence: all retained state is gone
        wait_for(lambda: agent.connection.connections >= 2, what="agent reconnected")
        wait_for(lambda: api.mq.connection.connections >= 2, what="server reconnected")
        # the agent re-announces itself, so the server's view survives the restart
        wait_for(lambda: online_names(api).get(name), what="online after restart")
        answers = httpx.post(url(api, "/check/ntp/127.0.0.1"), timeout=15).json()
        assert [a["Server"] for a in answers] == [name.split(".")[0]]
        assert not agent.ntp_paused()


def test_metrics_request_round_trip(prefix: str, monitors: MonitorTable) -> None:
    name = unique_name()
    monitors.add(name, "192.0.2.50")
    with (
        running_server(SHARED_BROKER, prefix, monitors) as api,
        running_agent(SHARED_BROKER, prefix, name, lambda ip: None) as agent,
    ):
        wait_for(lambda: online_names(api).get(name), what="online")
        reply = httpx.get(url(api, f"/monitors/metrics?client={name}"), timeout=15)
        assert (reply.status_code, reply.text) == (200, "")
        # the agent counts a request after publishing its reply, so the reply can arrive first
        wait_for(lambda: agent.handled["metrics"], what="the agent to count the request")
        assert agent.handled["metrics"] == 1
        missing = httpx.get(url(api, "/monitors/metrics?client=nobody"), timeout=15)
        assert (missing.status_code, missing.text) == (404, "Not found")
        groups = httpx.get(url(api, "/monitors/metrics/discovery")).json()
        assert groups == [
            {
                "targets": [name],
                "labels": {"account": name.split(".")[0].split("-", 1)[1], "ip_version": "v4"},
            }
        ]
