"""Ad-hoc check latency through MQTT: 20 agents online, 200 ``POST /check/ntp/{ip}`` checks.

Everything real on loopback and in separate processes, as deployed: Mosquitto (the shared one
on 127.0.0.1:1883 unless --port), the monitor-api internal HTTP API over uvicorn (this process),
20 agent processes probing a private chronyd with the real engine. Prints p50/p90/p99/max
of the end-to-end HTTP latency. Target: p99 < 250 ms with ``all=true`` (every agent asked at
once). Without ``all`` the server paces requests 400 ms apart until three healthy answers
arrived (api.md §11.1), so that mode is shown for reference only.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry

from ntpmon.agent.mqtt.client import AgentMqtt, AgentMqttOptions
from ntpmon.agent.mqtt.probe import adhoc_probe
from ntpmon.api.mqserver.broker import MqServerSettings
from ntpmon.api.mqserver.service import InternalApi, build_internal_api
from ntpmon.common.clock import SystemClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.version import version
from ntpmon.db.models import Monitor
from ntpmon.mqttcm.connection import BrokerEndpoint
from ntpmon.mqttcm.topics import Topics
from ntpmon.ntp.check import ProbeConfig, check_host
from ntpmon.testing.chronyd import private_chronyd
from ntpmon.testing.mosquitto import clear_retained

TARGET_P99_MS = 250.0
AGENT_VERSION = version()  # >= v4.0.4, the minimum for ad-hoc requests


def monitor_row(name: str, row_id: int) -> Monitor:
    return Monitor(
        id=row_id, id_token=None, type="monitor", user_id=None, account_id=1,
        hostname=name.split(".", 1)[0], location="", ip=f"192.0.2.{row_id}", ip_version="v4",
        tls_name=name, api_key=None, status="active", config="{}", client_version=AGENT_VERSION,
        last_seen=None, last_submit=None, created_on=datetime(2026, 1, 1, tzinfo=UTC),
        deleted_on=None, is_current=1,
    )  # fmt: skip


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run_checks(base: str, count: int, query: str) -> tuple[list[float], list[int]]:
    """``count`` checks one after another; latency in ms and healthy answers per check."""
    latencies, answers = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            reply = client.post(f"{base}/check/ntp/127.0.0.1{query}")
            latencies.append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
            answers.append(sum(1 for a in reply.json() if "NTP" in a and "Error" not in a))
    return latencies, answers


def run_agent(name: str, prefix: str, broker_port: int, ntp_port: int) -> int:
    """One agent process: answer ad-hoc requests until stdin closes."""
    cfg = ProbeConfig(
        samples=3, ip=ipaddress.ip_address("127.0.0.1"), port=ntp_port, allow_loopback=True
    )
    options = AgentMqttOptions(
        env=DeployEnv.DEVEL, name=name, endpoint=BrokerEndpoint("127.0.0.1", broker_port),
        topic_prefix=prefix, version=AGENT_VERSION,
    )  # fmt: skip
    agent = AgentMqtt(options, lambda: b"", adhoc_probe(lambda: [cfg], check_host))
    agent.start()
    sys.stdin.read()
    agent.stop()
    return 0


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1883, help="Mosquitto port on 127.0.0.1")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--paced-checks", type=int, default=10)
    parser.add_argument("--agent", nargs=3, metavar=("NAME", "PREFIX", "NTP_PORT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.agent:
        name, prefix, ntp_port = args.agent
        return run_agent(name, prefix, args.port, int(ntp_port))

    endpoint = BrokerEndpoint("127.0.0.1", args.port)
    prefix = f"/bench{secrets.token_hex(4)}/monitors"
    names = [
        f"bench{i:02d}-{secrets.token_hex(3)}.devel.mon.ntppool.dev" for i in range(args.agents)
    ]
    rows = {name: [monitor_row(name, i + 1)] for i, name in enumerate(names)}
    settings = MqServerSettings(
        env=DeployEnv.DEVEL, server_name="api.devel.mon.ntppool.dev", endpoint=endpoint,
        jwt_key=secrets.token_hex(32), client_id=f"api.devel-bench-{secrets.token_hex(3)}",
        topic_prefix=prefix, allow_private_targets=True,
    )  # fmt: skip
    api = build_internal_api(
        settings, load_monitors=lambda n: rows.get(n, []), registry=CollectorRegistry(),
        clock=SystemClock(),
    )  # fmt: skip
    agents: list[subprocess.Popen[bytes]] = []
    with private_chronyd() as ntpd:
        try:
            all_lat, all_answers, paced_lat, paced_answers = measure(
                api, agents, names, prefix, ntpd.port, args
            )
        finally:
            for proc in agents:
                proc.communicate(timeout=30)
            api.stop()
            clear_retained(endpoint, [Topics("devel", prefix).status(n) for n in names])
    if not all_lat:
        print("agents did not come online", file=sys.stderr)
        return 1

    print(f"agents: {args.agents} (one process each)   broker: {endpoint.url()}   NTP: chronyd")
    header = f"{'mode':<26}{'checks':>7}{'healthy/check':>15}{'p50 ms':>9}{'p90 ms':>9}"
    print(header + f"{'p99 ms':>9}{'max ms':>9}")
    for label, lat, answers in (
        ("all=true (target)", all_lat, all_answers),
        ("paced (3 healthy, 400 ms)", paced_lat, paced_answers),
    ):
        print(
            f"{label:<26}{len(lat):>7}{statistics.mean(answers):>15.1f}"
            f"{percentile(lat, 50):>9.1f}{percentile(lat, 90):>9.1f}"
            f"{percentile(lat, 99):>9.1f}{max(lat):>9.1f}"
        )
    p99 = percentile(all_lat, 99)
    verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms (all=true): {verdict} ({p99:.1f} ms)")
    return 0


def measure(
    api: InternalApi,
    agents: list[subprocess.Popen[bytes]],
    names: list[str],
    prefix: str,
    ntp_port: int,
    args: argparse.Namespace,
) -> tuple[list[float], list[int], list[float], list[int]]:
    """Start the HTTP API and the agents (into ``agents``), then run both kinds of checks."""
    http = api.start("127.0.0.1:0")
    port = str(args.port)
    agents.extend(spawn(["--port", port, "--agent", n, prefix, str(ntp_port)]) for n in names)
    deadline = time.monotonic() + 60
    while len(api.mq.clients.adhoc_targets("v4")) < len(names):
        if time.monotonic() > deadline:
            return [], [], [], []
        time.sleep(0.05)
    base = f"http://127.0.0.1:{http.port}"
    run_checks(base, 5, "?all=true")  # warm-up (connections, code paths)
    all_lat, all_answers = run_checks(base, args.checks, "?all=true")
    paced_lat, paced_answers = run_checks(base, args.paced_checks, "")
    return all_lat, all_answers, paced_lat, paced_answers


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
