"""SubmitResults throughput: N concurrent agents against monitor-api on MariaDB, per protocol.

monitor-api runs as its own process (``monitor-api server``), so client and server do not
share a GIL. Each client has its own monitor row, certificate and connection and loops
GetServers → SubmitResults with 10 results per batch until its queue is empty or the time is up.
``--protocol connect`` speaks Connect unary over one keep-alive HTTP/1.1 TLS connection per agent,
as the Go agents of the pool do; ``grpc`` uses grpc.aio (HTTP/2), as ntpmon's agent in ``grpc``
mode; ``both`` (the default) alternates the two against the same server, round by round.
Targets (issues 4 and 14): >= 5,000 results/s; Connect within 80 % of gRPC's results/s;
p99 SubmitResults < 50 ms at N = 50 on both.

CPU per batch pair is printed for the server, the local MariaDB (rough: it may be serving
other work too) and this process. The clients are coroutines of one asyncio loop in this
process: they share the 2 cores with the server and MariaDB, and one loop costs less CPU per
pair than 50 threads of a synchronous client (GIL hand-offs). ``BENCH_LOG_LEVEL=info`` shows
the server's log (and its access log line per RPC) on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Protocol, TypeVar

import grpc
import grpc.aio
import h11
from google.protobuf.message import Message
from sqlalchemy import Engine, update

from ntpmon.api.ca import EmbeddedCA, IssuedCertificate
from ntpmon.api.defaults import DEFAULT_WORKERS
from ntpmon.common.clock import SystemClock
from ntpmon.db import admin
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import monitors, server_scores, servers
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.databases import temporary_mysql_database

CLIENT_COUNTS = (1, 10, 50)
SERVERS = 2000
BATCH = 10
SERVICE = "monitor.v2.MonitorService"
USER_AGENT = "ntppool-agent/v4.1.5"
# what connect-go sends on a unary call (plus Content-Length), the Go agent's User-Agent
CONNECT_HEADERS = (
    ("host", "127.0.0.1"),
    ("user-agent", USER_AGENT),
    ("content-type", "application/proto"),
    ("connect-protocol-version", "1"),
    ("accept-encoding", "gzip"),
)
M = TypeVar("M", bound=Message)


@dataclass
class ClientStats:
    get_servers_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    results: int = 0
    errors: int = 0
    first_error: str = ""
    ready: bool = False


def _name(i: int) -> str:
    return f"bench{i}-aaaaaa.devel.mon.ntppool.dev"


def _ip(i: int) -> str:
    return f"10.77.{i // 250}.{i % 250 + 1}"


def seed(engine, clients: int) -> None:
    now = SystemClock().now()
    with engine.begin() as conn:
        for i in range(SERVERS):
            admin.create_server(
                conn, ip=f"172.{16 + i // 65000}.{i // 250 % 250}.{i % 250 + 1}", now=now
            )
        conn.execute(update(servers).values(stratum=2))
        for i in range(clients):
            mid = admin.create_monitor(
                conn, tls_name=_name(i), ip=_ip(i), now=now, status=MonitorStatus.ACTIVE
            )
            admin.assign_monitor_to_servers(conn, monitor_id=mid, now=now)
        conn.execute(update(server_scores).values(stratum=2))


def reset(engine) -> None:
    """Every assignment due again and no batch seen yet, before each round."""
    with engine.begin() as conn:
        conn.execute(update(server_scores).values(queue_ts=None))
        conn.execute(update(monitors).values(last_submit=None))


def _drain(stream: IO[str]) -> None:
    """Read the server's log on, echoed when ``BENCH_LOG_LEVEL`` asks for it."""
    echo = "BENCH_LOG_LEVEL" in os.environ
    for line in stream:
        if echo:
            sys.stderr.write(line)


def start_server(
    dsn: str, data_dir: Path, workers: int, processes: int
) -> tuple[subprocess.Popen, int]:
    cmd = [
        str(Path(sys.executable).parent / "monitor-api"), "server",
        "--database-dsn", dsn, "--data-dir", str(data_dir),
        "--listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0",
        "--health-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
        "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn"),
        "--max-workers", str(workers), "--processes", str(processes),
    ]  # fmt: skip
    env = dict(os.environ, MONITOR_TICKET_KEYS="1:bench-key")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"rpc=(\d+)", line)
        if match:
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, int(match.group(1))
    raise SystemExit("monitor-api did not start")


def statuses_for(batch: pb.GetServersResponse) -> list[pb.ServerStatus]:
    """An agent's results for a batch: every server answered, 1.5 ms offset, 20 ms delay."""
    statuses = []
    for s in batch.servers:
        st = pb.ServerStatus(ticket=s.ticket, ip_bytes=s.ip_bytes, stratum=2)
        st.offset.FromNanoseconds(1_500_000)
        st.rtt.FromNanoseconds(20_000_000)
        st.ts.GetCurrentTime()
        statuses.append(st)
    return statuses


class RpcFailedError(Exception):
    """A call answered with an error status (either protocol): counted, not raised on."""


class Transport(Protocol):
    """One agent's connection: unary calls by method name, whatever the protocol."""

    async def call(self, method: str, request: Message, response_class: type[M]) -> M: ...

    async def close(self) -> None: ...


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class GrpcTransport:
    """grpc.aio over one HTTP/2 channel, as ntpmon's agent in ``grpc`` mode."""

    def __init__(self, port: int, cert: IssuedCertificate, ca: EmbeddedCA) -> None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca.root_pem().encode(),
            private_key=cert.key_pem.encode(),
            certificate_chain=cert.cert_pem.encode(),
        )
        self._channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}", creds, options=[("grpc.primary_user_agent", USER_AGENT)]
        )
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    async def call(self, method: str, request: Message, response_class: type[M]) -> M:
        stub = self._calls.get(method)
        if stub is None:
            stub = self._calls[method] = self._channel.unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=_serialize,
                response_deserializer=response_class.FromString,
            )
        try:
            return await stub(request)
        except grpc.RpcError as exc:
            raise RpcFailedError(str(exc)) from None

    async def close(self) -> None:
        await self._channel.close()


class ConnectTransport:
    """Connect unary over one keep-alive HTTP/1.1 TLS connection, as the Go agents call
    (connect-go's headers; h11 frames the messages, asyncio streams carry them)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._http = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int, tls: ssl.SSLContext) -> ConnectTransport:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1"
        )
        return cls(reader, writer)

    async def call(self, method: str, request: Message, response_class: type[M]) -> M:
        body = request.SerializeToString()
        http = self._http
        self._writer.write(
            http.send(
                h11.Request(
                    method="POST",
                    target=f"/{SERVICE}/{method}",
                    headers=[*CONNECT_HEADERS, ("content-length", str(len(body)))],
                )
            )
            + http.send(h11.Data(data=body))
            + http.send(h11.EndOfMessage())
        )
        status, gzipped, chunks = 0, False, []
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                gzipped = (b"content-encoding", b"gzip") in event.headers
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise RpcFailedError("connection closed")
        http.start_next_cycle()
        body = b"".join(chunks)
        if gzipped:  # a server may compress since we accept it (connect-go does)
            body = gzip.decompress(body)
        if status != 200:
            raise RpcFailedError(body.decode(errors="replace"))
        return response_class.FromString(body)

    async def close(self) -> None:
        self._writer.close()


def client_tls(ca: EmbeddedCA, cert: IssuedCertificate, directory: Path) -> ssl.SSLContext:
    """The agent's TLS: the CA's root trusted, its certificate offered, HTTP/1.1 only (ALPN)."""
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_text(cert.cert_pem)
    key_file.write_text(cert.key_pem)
    tls = ssl.create_default_context(cadata=ca.root_pem())
    tls.load_cert_chain(cert_file, key_file)
    tls.set_alpn_protocols(["http/1.1"])
    return tls


async def open_transport(
    protocol: str, i: int, port: int, ca: EmbeddedCA, directory: Path
) -> Transport:
    cert = ca.issue_client(_name(i), timedelta(hours=1))
    if protocol == "grpc":
        return GrpcTransport(port, cert, ca)
    client_dir = directory / f"client{i}"
    client_dir.mkdir(exist_ok=True)
    return await ConnectTransport.open(port, client_tls(ca, cert, client_dir))


async def client_loop(
    transport: Transport, i: int, deadline: list[float], stats: ClientStats, go: asyncio.Event
) -> None:
    """One agent: GetServers → SubmitResults in a loop on its own connection."""
    mon_id = _ip(i)
    await transport.call("GetConfig", pb.GetConfigRequest(mon_id=mon_id), pb.GetConfigResponse)
    stats.ready = True
    await go.wait()
    while time.monotonic() < deadline[0]:
        t0 = time.perf_counter()
        batch = await transport.call(
            "GetServers", pb.GetServersRequest(mon_id=mon_id), pb.GetServersResponse
        )
        stats.get_servers_ms.append((time.perf_counter() - t0) * 1000)
        if not batch.servers:
            break
        statuses = statuses_for(batch)
        request = pb.SubmitResultsRequest(
            version=4, mon_id=mon_id, batch_id=batch.batch_id, list=statuses
        )
        t0 = time.perf_counter()
        try:
            await transport.call("SubmitResults", request, pb.SubmitResultsResponse)
        except RpcFailedError as exc:
            stats.errors += 1
            stats.first_error = stats.first_error or str(exc)
            continue
        stats.submit_ms.append((time.perf_counter() - t0) * 1000)
        stats.results += len(statuses)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children, the --processes workers
    (Linux /proc)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                continue
    total = 0
    for p in pids:
        fields = _stat(p)
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def database_pid() -> int | None:
    """The local MariaDB/MySQL server, whose CPU per batch is reported too (it may be serving
    other work at the same time: a rough figure)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


async def agent(
    protocol: str,
    i: int,
    port: int,
    ca: EmbeddedCA,
    directory: Path,
    deadline: list[float],
    stats: ClientStats,
    go: asyncio.Event,
) -> None:
    transport = await open_transport(protocol, i, port, ca, directory)
    try:
        await client_loop(transport, i, deadline, stats, go)
    finally:
        await transport.close()


def run_round(
    protocol: str, n: int, port: int, ca: EmbeddedCA, directory: Path, seconds: float
) -> tuple[float, list[ClientStats]]:
    """N clients as coroutines of one event loop: the load generator shares the machine with
    the server and MariaDB, and 50 threads of the synchronous client cost it ~50 % more CPU
    per batch (GIL hand-offs) than one loop does."""
    return asyncio.run(_round(protocol, n, port, ca, directory, seconds))


async def _round(
    protocol: str, n: int, port: int, ca: EmbeddedCA, directory: Path, seconds: float
) -> tuple[float, list[ClientStats]]:
    stats = [ClientStats() for _ in range(n)]
    go = asyncio.Event()
    deadline = [float("inf")]
    tasks = [
        asyncio.create_task(agent(protocol, i, port, ca, directory, deadline, stats[i], go))
        for i in range(n)
    ]
    while not all(s.ready for s in stats):  # every client connected and waiting
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)  # a client failed to start: its error
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    deadline[0] = t0 + seconds
    go.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    return time.monotonic() - t0, stats


@dataclass(frozen=True)
class Row:
    """One round's figures: throughput, latency per RPC and CPU per batch pair (ms)."""

    protocol: str
    clients: int
    results: int
    seconds: float
    get_servers: tuple[float, float]
    submit: tuple[float, float]
    errors: int
    server_cpu: float
    db_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.results / self.seconds


def measure_round(
    protocol: str,
    n: int,
    engine: Engine,
    server_pid: int,
    db_pid: int | None,
    port: int,
    ca: EmbeddedCA,
    directory: Path,
    seconds: float,
) -> Row:
    reset(engine)
    cpu0 = cpu_seconds(server_pid)
    db0 = cpu_seconds(db_pid) if db_pid else 0.0
    mine0 = time.process_time()
    elapsed, stats = run_round(protocol, n, port, ca, directory, seconds)
    cpu = cpu_seconds(server_pid) - cpu0
    db = cpu_seconds(db_pid) - db0 if db_pid else float("nan")
    mine = time.process_time() - mine0
    gs = [x for s in stats for x in s.get_servers_ms]
    sr = [x for s in stats for x in s.submit_ms]
    pairs = max(len(sr), 1)
    first_error = next((s.first_error for s in stats if s.first_error), "")
    if first_error:
        print(f"{protocol}, {n} clients, first error: {first_error}", file=sys.stderr)
    return Row(
        protocol=protocol,
        clients=n,
        results=sum(s.results for s in stats),
        seconds=elapsed,
        get_servers=(pct(gs, 50), pct(gs, 99)),
        submit=(pct(sr, 50), pct(sr, 99)),
        errors=sum(s.errors for s in stats),
        server_cpu=cpu * 1000 / pairs,
        db_cpu=db * 1000 / pairs,
        client_cpu=mine * 1000 / pairs,
    )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'protocol':>8} {'clients':>7} {'results':>8} {'seconds':>7} {'results/s':>9} "
        f"{'GetServers p50/p99 ms':>22} {'SubmitResults p50/p99 ms':>25} {'errors':>6} "
        f"{'CPU ms/batch server':>19} {'db':>5} {'clients':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.protocol:>8} {r.clients:>7} {r.results:>8} {r.seconds:>7.1f} {r.rate:>9.0f} "
            f"{r.get_servers[0]:>10.1f} / {r.get_servers[1]:>8.1f}  "
            f"{r.submit[0]:>12.1f} / {r.submit[1]:>8.1f}  {r.errors:>6} "
            f"{r.server_cpu:>19.2f} {r.db_cpu:>5.2f} {r.client_cpu:>7.2f}"
        )
    by_key = {(r.protocol, r.clients): r for r in rows}
    for n in sorted({r.clients for r in rows}):
        connect, grpc_row = by_key.get(("connect", n)), by_key.get(("grpc", n))
        if connect and grpc_row and grpc_row.rate:
            print(f"{n} clients: Connect at {100 * connect.rate / grpc_row.rate:.0f} % of gRPC")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration per round")
    parser.add_argument("--clients", type=int, nargs="*", default=list(CLIENT_COUNTS))
    parser.add_argument(
        "--protocol",
        choices=("connect", "grpc", "both"),
        default="both",
        help="the agents' protocol; both: alternating rounds against the same server",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="handler threads")
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    args = parser.parse_args()
    protocols = ("connect", "grpc") if args.protocol == "both" else (args.protocol,)
    with temporary_mysql_database("ntpmon_bench") as engine, tempfile.TemporaryDirectory() as tmp:
        seed(engine, max(args.clients))
        dsn = engine.url.render_as_string(hide_password=False)
        proc, port = start_server(dsn, Path(tmp), args.workers, args.processes)
        try:
            ca = EmbeddedCA.load_or_create(Path(tmp) / "ca")
            db_pid = database_pid()
            rows = [
                measure_round(
                    protocol, n, engine, proc.pid, db_pid, port, ca, Path(tmp), args.seconds
                )
                for n in args.clients
                for protocol in protocols
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    load = os.getloadavg()[0]
    print(
        f"monitor-api SubmitResults benchmark: MariaDB, {BATCH} results per batch, "
        f"{args.processes} server process(es) x {args.workers} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print_table(rows)
    print(
        "targets: >= 5000 results/s; Connect >= 80 % of gRPC's results/s; "
        "p99 SubmitResults < 50 ms at 50 clients"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
