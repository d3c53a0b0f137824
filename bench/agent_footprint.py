"""Agent footprint: ``ntppool-agent monitor`` watching 500 local NTP responders at the
production cadence (every server re-tested every 9 minutes, batches of at most 10, 3 samples
per server) for a few minutes. Prints peak RSS and CPU seconds per hour of the agent process.

Targets (issue 5): RSS <= 30 MB (the Go agent's figure) and < 1 % of one core.

The agent is the real program in its own process, talking Connect (or gRPC) over mutual TLS
and HTTPS to
the scripted stand-ins from tests/agent (monitor-api's own service needs a database and an
approved monitor; the figures here are about the agent). With ``--telemetry on`` (the agent's
default) it exports over OTLP/HTTP with its client certificate to a collector stand-in on
loopback; ``off`` is the agent without the OpenTelemetry SDK. Usage:
    python bench/agent_footprint.py [--servers 500] [--minutes 3] [--telemetry on|off]
        [--protocol connect|grpc]
"""

from __future__ import annotations

import argparse
import compileall
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent.certs_helper import TestCA  # noqa: E402
from agent.fake_connect_api import FakeConnectApi  # noqa: E402
from agent.fake_management import FakeManagement, ManagementServer  # noqa: E402
from agent.fake_monitor_api import FakeMonitorApi, Script  # noqa: E402

from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb  # noqa: E402
from ntpmon.testing.otlpreceiver import OtlpReceiver  # noqa: E402

ACTIVE_INTERVAL = 540.0  # the server's default re-test interval for an active monitor
BATCH = 10
TLS_NAME = "bench-abc123.devel.mon.ntppool.dev"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
MAPPING_KINDS = (
    "anonymous (heap, Python objects, stacks)",
    "grpcio native library (cygrpc)",
    "libpython",
    "OpenSSL (libcrypto, libssl)",
    "other libraries and files",
    "libraries' dirty pages (in the above)",
)

RESPONDERS = """
import sys, time
from ntpmon.testing.ntpserver import NTPResponder
hosts = sys.argv[2:]
first = NTPResponder(hosts[0], int(sys.argv[1])).start()
rs = [first] + [NTPResponder(h, first.port).start() for h in hosts[1:]]
print(first.port, flush=True)
sys.stdin.read()
"""


class Cadence:
    """Hands out servers when due: each one every ACTIVE_INTERVAL seconds, at most BATCH."""

    def __init__(self, ips: list[bytes]) -> None:
        now = time.monotonic()
        self.due = {ip: now + random.uniform(0, ACTIVE_INTERVAL) for ip in ips}
        self.lock = threading.Lock()
        self.handed_out = 0

    def next_batch(self) -> list[bytes]:
        now = time.monotonic()
        with self.lock:
            ready = sorted((d, ip) for ip, d in self.due.items() if d <= now)[:BATCH]
            for _, ip in ready:
                self.due[ip] = now + ACTIVE_INTERVAL
            self.handed_out += len(ready)
            return [ip for _, ip in ready]


class CadenceScript(Script):
    """A Script whose ``servers`` list is refilled from the cadence on every GetServers."""

    def __init__(self, cadence: Cadence, config: pb.GetConfigResponse) -> None:
        super().__init__(config=config)
        self.cadence = cadence

    def __getattribute__(self, name: str) -> object:
        if name == "servers":
            return [object.__getattribute__(self, "cadence").next_batch()]
        return object.__getattribute__(self, name)


def status_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field))


def proc_stats(pid: int) -> tuple[int, float]:
    """(peak RSS in bytes, CPU seconds) of a live process."""
    hwm = status_kb(pid, "VmHWM")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return hwm * 1024, cpu


def smaps_breakdown(pid: int) -> dict[str, int]:
    """Resident kB of a live process by kind of mapping: what RSS is made of.

    Anonymous memory (Python objects, malloc, thread stacks, the dirty pages of libraries) is
    the process's own; the file-backed pages of shared libraries are clean and can be shared
    with other processes (the page cache keeps one copy), but RSS counts them all.
    """
    groups = dict.fromkeys(MAPPING_KINDS, 0)
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if MAPPING.match(line):
            head = line.split(None, 5)
            path = head[5].strip() if len(head) > 5 else ""
            base = path.rsplit("/", 1)[-1]
            if not path or path.startswith("["):
                name = MAPPING_KINDS[0]
            elif base.startswith("cygrpc"):
                name = MAPPING_KINDS[1]
            elif base.startswith("libpython"):
                name = MAPPING_KINDS[2]
            elif base.startswith(("libcrypto", "libssl")):
                name = MAPPING_KINDS[3]
            else:
                name = MAPPING_KINDS[4]
        elif line.startswith("Rss:"):
            groups[name] += int(line.split()[1])
        elif line.startswith("Private_Dirty:") and name != MAPPING_KINDS[0]:
            groups[MAPPING_KINDS[5]] += int(line.split()[1])
    return groups


def live_threads(pid: int) -> list[tuple[str, float]]:
    """(name, CPU seconds) of every live thread (finished threads only count in the process
    total; Python's own threads are all named ``python``)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.append((name, (int(fields[11]) + int(fields[12])) / CLK_TCK))
    return out


def thread_names(threads: list[tuple[str, float]]) -> dict[str, int]:
    """How many live threads carry each name."""
    out: dict[str, int] = {}
    for name, _cpu in threads:
        out[name] = out.get(name, 0) + 1
    return out


def thread_cpu(threads: list[tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per live thread name."""
    out: dict[str, float] = {}
    for name, cpu in threads:
        out[name] = out.get(name, 0.0) + cpu
    return out


def fake_api(protocol: str) -> type[FakeConnectApi] | type[FakeMonitorApi]:
    """The stand-in that speaks the agent's protocol (Connect over HTTP/1.1, or gRPC)."""
    return FakeConnectApi if protocol == "connect" else FakeMonitorApi


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--telemetry", choices=("on", "off"), default="on")
    parser.add_argument("--protocol", choices=("connect", "grpc"), default="connect")
    args = parser.parse_args()
    # measure the agent as installed: pip and distribution packages compile every module at
    # install time, while an editable checkout under PYTHONDONTWRITEBYTECODE=1 would compile
    # ntpmon's sources at each start (~0.9 MB more peak RSS, none of it the agent's)
    compileall.compile_dir(ROOT / "src" / "ntpmon", quiet=1)

    hosts = [str(ipaddress.ip_address("127.0.1.1") + i) for i in range(args.servers)]
    responders = subprocess.Popen(
        [sys.executable, "-c", RESPONDERS, "0", *hosts],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert responders.stdout is not None
    port = int(responders.stdout.readline())
    ca = TestCA()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server = ca.issue("api.devel.mon.ntppool.dev", server=True)
        (base / "srv-cert.pem").write_bytes(server.cert_pem)
        (base / "srv-key.pem").write_bytes(server.key_pem)
        (base / "ca.pem").write_bytes(ca.pem)

        def issue(name: str) -> tuple[bytes, bytes, bytes]:
            client = ca.issue(name or TLS_NAME)
            return client.cert_pem, client.key_pem, ca.pem

        mgmt_state = FakeManagement(
            config_doc={
                "name": "bench",
                "tls_name": TLS_NAME,
                "ipv4": {"status": "active", "ip": "127.0.0.1"},
                "ipv6": {"status": "", "ip": ""},
            },
            token_status=200,
            token_doc={"access_token": "jwt", "token_type": "Bearer", "expires_in": 3600},
            issue_cert=issue,
        )
        cadence = Cadence([ipaddress.ip_address(h).packed for h in hosts])
        config = pb.GetConfigResponse(
            samples=3,
            ip_bytes=ipaddress.ip_address("127.0.0.1").packed,
            base_checks=[h.encode() for h in hosts[:3]],
        )
        script = CadenceScript(cadence, config)
        with (
            ManagementServer(mgmt_state, base / "srv-cert.pem", base / "srv-key.pem") as mgmt,
            fake_api(args.protocol)(script, server.cert_pem, server.key_pem, ca.pem) as api,
            OtlpReceiver(base / "srv-cert.pem", base / "srv-key.pem", base / "ca.pem") as otlp,
        ):
            state = base / "state" / "devel"
            state.mkdir(parents=True, mode=0o700)
            (state / "state.json").write_text(json.dumps({"API": {"APIKey": "bench-key"}}))
            env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
            env.update(
                {
                    "API_HOST": mgmt.url,
                    "DEVEL_API_SERVER": api.url,
                    "MONITOR_CA_FILE": str(base / "ca.pem"),
                    "MONITOR_NTP_PORT": str(port),
                    "MONITOR_ALLOW_LOOPBACK": "true",
                    "MONITOR_LOG_LEVEL": "warn",
                    "MONITOR_TELEMETRY": args.telemetry,
                    "MONITOR_RPC_PROTOCOL": args.protocol,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
                }
            )
            agent = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "ntppool-agent"),
                    "-e",
                    "devel",
                    "--state-dir",
                    str(base / "state"),
                    "--no-ipv6",
                    "monitor",
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            started = time.monotonic()
            time.sleep(30)  # start-up: imports, gates, first config
            _, cpu_warm = proc_stats(agent.pid)
            rss_warm = status_kb(agent.pid, "VmRSS") * 1024  # against the end: growth
            warm = time.monotonic()
            peak = 0
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(5)
                peak = max(peak, proc_stats(agent.pid)[0])
            peak, cpu_end = proc_stats(agent.pid)
            rss_now = status_kb(agent.pid, "VmRSS") * 1024
            thread_count = status_kb(agent.pid, "Threads")
            live = live_threads(agent.pid)
            threads = thread_cpu(live)
            names = thread_names(live)
            breakdown = smaps_breakdown(agent.pid)
            _, responder_cpu = proc_stats(responders.pid)
            steady = time.monotonic() - warm
            submitted = api.servicer.count("SubmitResults")
            statuses = sum(
                len(c.request.list) for c in api.servicer.calls if c.method == "SubmitResults"
            )
            agent.terminate()
            agent.wait(20)
            exports = {p: len(otlp.received(p)) for p in ("/v1/traces", "/v1/metrics", "/v1/logs")}
    responders.stdin.close()  # type: ignore[union-attr]
    responders.terminate()
    responders.wait(20)

    cpu_per_hour = (cpu_end - cpu_warm) / steady * 3600
    rows = [
        ("servers", f"{args.servers}"),
        ("duration (s)", f"{time.monotonic() - started:.0f}"),
        ("telemetry", args.telemetry),
        ("protocol", args.protocol),
        ("OTLP posts received", ", ".join(f"{p} {n}" for p, n in exports.items())),
        ("batches submitted", f"{submitted}"),
        ("server results submitted", f"{statuses}"),
        ("expected results at cadence", f"{args.servers * steady / ACTIVE_INTERVAL:.0f}"),
        ("peak RSS (MB)", f"{peak / 1e6:.1f}  (target <= 30)"),
        ("RSS after start-up (30 s, MB)", f"{rss_warm / 1e6:.1f}"),
        ("RSS at the end (MB)", f"{rss_now / 1e6:.1f}"),
        ("threads at the end", f"{thread_count}"),
        ("CPU s total (incl. start-up)", f"{cpu_end:.2f}"),
        ("CPU s per hour (steady)", f"{cpu_per_hour:.1f}"),
        ("share of one core", f"{cpu_per_hour / 36:.2f} %  (target < 1 %)"),
        ("agent CPU ms per server result", f"{1000 * cpu_end / max(statuses, 1):.1f}"),
        ("responder process CPU s (same host)", f"{responder_cpu:.1f}"),
        ("load average at the end (1/5/15 min)", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]
    rows += [
        (f"  thread {name}", f"{cpu:.2f} s")
        for name, cpu in sorted(threads.items(), key=lambda kv: -kv[1])[:5]
    ]
    rows.append(("threads by name", ", ".join(f"{n} {c}" for n, c in sorted(names.items()))))
    rows.append(("RSS at the end by mapping (MB)", ""))
    rows += [(f"  {kind}", f"{kb * 1024 / 1e6:.1f}") for kind, kb in breakdown.items()]
    width = max(len(k) for k, _ in rows)
    print("agent footprint")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
