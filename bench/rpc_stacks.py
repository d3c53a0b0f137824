"""Which server stack for the RPC port: one trivial unary call over each candidate, same clients.

The RPC port must serve Connect over HTTP/1.1 (the Go agents) and HTTP/2, gRPC (HTTP/2 with
trailers) and gRPC-Web on one TLS port, with the client certificate optional at the handshake
and, when presented, visible to the application (it is the monitor's identity). Compared here:

* ``ntpmon``: our listener (hypercorn's h11/h2 engines behind our TLS accept loop) and our codec
  ASGI app with the dispatcher (identity, metrics, access-log check, span) and the scheduler;
* ``connectrpc-hypercorn``: the ``connectrpc`` package's ASGI application (google.protobuf via
  ``connectrpc.compat``) served by ``hypercorn`` with the same TLS settings;
* ``connectrpc-granian`` and ``connectrpc-pyvoy``: the same application on granian (Rust,
  hyper) and pyvoy (Envoy with Python as a dynamic module).

Every service answers GetConfig with the same fixed message, computed on a thread pool as the
real (synchronous, database-bound) service must be. Each stack runs as its own process; N
clients (coroutines of one loop in this process, the clients of ``api_submit.py``) call it in a
closed loop, Connect over HTTP/1.1 and then gRPC over HTTP/2. Printed: calls/s, p50/p99 and the
CPU per call of the server (with its child processes) and of the clients, and what each stack
lets the application see (trailers, client certificate). ``--profile`` runs the ntpmon stack
under yappi (CPU clock, all threads) and prints its top functions. Needs the ``bench`` extra
(``pip install -e '.[bench]'``) for the stacks other than ntpmon.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from api_submit import (
    ClientStats,
    RpcFailedError,
    Transport,
    client_tls,
    cpu_seconds,
    open_transport,
    pct,
)
from google.protobuf.message import Message

from ntpmon.api.ca import EmbeddedCA
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

HERE = Path(__file__).resolve().parent
STACKS = ("ntpmon", "connectrpc-hypercorn", "connectrpc-granian", "connectrpc-pyvoy")
SERVICE = "monitor.v2.MonitorService"
MON_ID = "10.77.0.1"
CLIENT_NAME = "bench0-aaaaaa.devel.mon.ntppool.dev"
HANDLER_THREADS = 6
_pool = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="handler")


def respond(request: Message) -> pb.GetConfigResponse:
    """The trivial service: a fixed config, a little bigger than an empty message."""
    return pb.GetConfigResponse(
        samples=4, ip_bytes=b"\x0a\x4d\x00\x01", base_checks=[b"\x7f\x00\x00\x01"] * 4
    )


# -- the servers, each run in its own process --------------------------------------------------

Scope = MutableMapping[str, Any]


def _probe(app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Wrap an ASGI app to report, once per HTTP version, what the server tells it: trailers
    allowed, and any TLS details (the client certificate) in the scope."""
    seen: set[str] = set()

    async def probed(scope: Scope, receive: Any, send: Any) -> None:
        version = scope.get("http_version", "")
        if scope["type"] == "http" and version not in seen:
            seen.add(version)
            extensions = scope.get("extensions") or {}
            tls = extensions.get("tls")
            tls_keys = sorted(k for k, v in tls.items() if v) if isinstance(tls, dict) else None
            print(
                f"probe HTTP/{version}: trailers={'http.response.trailers' in extensions} "
                f"tls={tls_keys}",
                file=sys.stderr,
                flush=True,
            )
        await app(scope, receive, send)

    return probed


def connect_app() -> Callable[..., Awaitable[None]]:
    """The ``connectrpc`` package's ASGI application for GetConfig, google.protobuf codecs."""
    from connectrpc.compat import google_protobuf_codecs
    from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
    from connectrpc.server import ConnectASGIApplication, Endpoint

    method = MethodInfo(
        name="GetConfig",
        service_name=SERVICE,
        input=pb.GetConfigRequest,
        output=pb.GetConfigResponse,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )

    async def get_config(request: pb.GetConfigRequest, ctx: Any) -> pb.GetConfigResponse:
        return await asyncio.get_running_loop().run_in_executor(_pool, respond, request)

    class App(ConnectASGIApplication):
        @property
        def path(self) -> str:
            return f"/{SERVICE}"

    return _probe(
        App(
            service=object(),
            endpoints=lambda _: {f"/{SERVICE}/GetConfig": Endpoint.unary(method, get_config)},
            codecs=google_protobuf_codecs(),
            compressions=(),  # gzip'd responses by default; ours are never compressed
        )
    )


def app() -> Callable[..., Awaitable[None]]:
    """ASGI factory for the hypercorn and granian command lines."""
    return connect_app()


def __getattr__(name: str) -> Any:
    """``rpc_stacks:asgi``, the application itself for pyvoy (which takes no factory), built
    only in the process that serves it."""
    if name == "asgi":
        return connect_app()
    raise AttributeError(name)


class _FixedService:
    """The monitor service's three methods, each answering the fixed config."""

    def get_config(self, request: Message, call: Any) -> pb.GetConfigResponse:
        return respond(request)

    get_servers = submit_results = get_config


def serve_ntpmon(directory: Path, port: int) -> None:
    """Our stack, as ``monitor-api server`` assembles it, with the fixed service."""
    from ntpmon.api.admission import PriorityScheduler
    from ntpmon.api.metrics import ApiMetrics
    from ntpmon.api.rpc.app import RpcApp
    from ntpmon.api.rpc.dispatch import CallerIdentity, Dispatcher
    from ntpmon.api.rpc.listener import open_listener
    from ntpmon.api.rpc.tlsfiles import TlsFiles, build_context
    from ntpmon.api.tracing import RpcTracer

    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    files = TlsFiles(directory / "server.crt", directory / "server.key", [directory / "ca.pem"])
    metrics = ApiMetrics()
    dispatcher = Dispatcher(_FixedService(), metrics, RpcTracer(), CallerIdentity())  # type: ignore[arg-type]
    rpc = RpcApp(dispatcher, PriorityScheduler(HANDLER_THREADS, observe=metrics.queued))
    listener = open_listener(rpc, build_context(files), f"127.0.0.1:{port}")
    stop = asyncio.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.1)
    listener.stop(1.0)
    if profile:
        yappi.stop()
        with open(profile, "w") as out:
            yappi.get_func_stats().sort("tsub").print_all(
                out=out, columns={0: ("name", 90), 1: ("ncall", 9), 2: ("tsub", 8), 4: ("ttot", 8)}
            )


def server_command(stack: str, directory: Path, port: int) -> list[str]:
    """The command line that serves ``stack`` on ``port`` (TLS, client certificate optional)."""
    bin_dir = Path(sys.executable).parent
    crt, key, ca = (str(directory / n) for n in ("server.crt", "server.key", "ca.pem"))
    if stack == "ntpmon":
        return [sys.executable, str(Path(__file__)), "--serve-ntpmon", str(directory), str(port)]
    if stack == "connectrpc-hypercorn":
        return [
            str(bin_dir / "hypercorn"), "rpc_stacks:app()", "--bind", f"127.0.0.1:{port}",
            "--certfile", crt, "--keyfile", key, "--ca-certs", ca, "--verify-mode", "CERT_OPTIONAL",
            "--log-level", "warning",
        ]  # fmt: skip
    if stack == "connectrpc-granian":
        # client verification on: granian then requires a certificate (no "optional" mode)
        return [
            str(bin_dir / "granian"), "--interface", "asgi", "--factory", "rpc_stacks:app",
            "--host", "127.0.0.1", "--port", str(port), "--http", "auto",
            "--ssl-certificate", crt, "--ssl-keyfile", key, "--ssl-ca", ca,
            "--ssl-client-verify", "--ssl-protocol-min", "tls1.2", "--log-level", "warning",
            "--no-ws",
        ]  # fmt: skip
    if stack == "connectrpc-pyvoy":
        return [
            str(bin_dir / "pyvoy"), "rpc_stacks:asgi", "--address", "127.0.0.1",
            "--port", str(port), "--tls-cert", crt, "--tls-key", key, "--tls-ca-cert", ca,
            "--no-tls-require-client-certificate", "--tls-disable-http3",
            "--worker-threads", "1", "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(stack)


# -- the load -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError("server did not start")


async def caller(
    transport: Transport, deadline: list[float], stats: ClientStats, go: asyncio.Event
) -> None:
    request = pb.GetConfigRequest(mon_id=MON_ID)
    try:
        await transport.call("GetConfig", request, pb.GetConfigResponse)
    except Exception as exc:  # whatever the stack does wrong is reported, not a hang
        stats.errors += 1
        stats.first_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stats.ready = True
        return
    stats.ready = True
    await go.wait()
    while time.monotonic() < deadline[0]:
        t0 = time.perf_counter()
        try:
            await transport.call("GetConfig", request, pb.GetConfigResponse)
        except Exception as exc:
            stats.errors += 1
            stats.first_error = stats.first_error or str(exc) or type(exc).__name__
            if not isinstance(exc, RpcFailedError):
                return  # the connection is broken
            continue
        stats.submit_ms.append((time.perf_counter() - t0) * 1000)


async def load(
    protocol: str, n: int, port: int, ca: EmbeddedCA, directory: Path, seconds: float
) -> tuple[float, list[ClientStats]]:
    stats = [ClientStats() for _ in range(n)]
    go, deadline = asyncio.Event(), [float("inf")]
    transports = []
    for _ in range(n):
        try:
            transports.append(await open_transport(protocol, 0, port, ca, directory))
        except (OSError, ConnectionError) as exc:
            stats[0].first_error = f"connect: {exc}"
            stats[0].errors += 1
            return 0.0, stats
    tasks = [
        asyncio.create_task(caller(t, deadline, s, go))
        for t, s in zip(transports, stats, strict=True)
    ]
    while not all(s.ready for s in stats):
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    deadline[0] = t0 + seconds
    go.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
    elapsed = time.monotonic() - t0
    for t in transports:
        await t.close()
    return elapsed, stats


def write_tls(directory: Path) -> EmbeddedCA:
    ca = EmbeddedCA.load_or_create(directory / "ca")
    server = ca.issue_server(["127.0.0.1", "localhost"], timedelta(hours=1))
    (directory / "server.crt").write_text(server.cert_pem)
    (directory / "server.key").write_text(server.key_pem)
    (directory / "ca.pem").write_text(ca.root_pem())
    client = ca.issue_client(CLIENT_NAME, timedelta(hours=1))
    client_tls(ca, client, directory)  # the client's files, for tools run by hand
    return ca


def run_stack(
    stack: str, ca: EmbeddedCA, directory: Path, clients: int, seconds: float, profile: str
) -> list[tuple[str, str, str]]:
    port = free_port()
    log_file = directory / f"{stack}.log"
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    if profile and stack == "ntpmon":
        env["BENCH_PROFILE"] = profile
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            server_command(stack, directory, port), stdout=log, stderr=log, env=env, cwd=HERE
        )
    rows = []
    try:
        asyncio.run(wait_ready(port, proc))
        for protocol in ("connect", "grpc"):
            cpu0, mine0 = cpu_seconds(proc.pid), time.process_time()
            elapsed, stats = asyncio.run(load(protocol, clients, port, ca, directory, seconds))
            cpu, mine = cpu_seconds(proc.pid) - cpu0, time.process_time() - mine0
            ms = [x for s in stats for x in s.submit_ms]
            errors = sum(s.errors for s in stats)
            first = next((s.first_error for s in stats if s.first_error), "")
            if not ms:
                rows.append((stack, protocol, f"failed: {first[:90]}"))
                continue
            calls = len(ms)
            rows.append(
                (
                    stack,
                    protocol,
                    f"{calls / elapsed:>8.0f} {pct(ms, 50):>7.2f} {pct(ms, 99):>7.2f} "
                    f"{cpu * 1000 / calls:>10.3f} {mine * 1000 / calls:>10.3f} {errors:>6}",
                )
            )
    except RuntimeError as exc:
        rows.append((stack, "-", f"failed: {exc}"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for line in log_file.read_text().splitlines():
        if line.startswith("probe "):
            rows.append((stack, "probe", line.removeprefix("probe ")))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration per protocol")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--stacks", nargs="*", default=list(STACKS), choices=STACKS)
    parser.add_argument("--profile", action="store_true", help="yappi profile of ntpmon's stack")
    parser.add_argument("--serve-ntpmon", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ntpmon:
        serve_ntpmon(Path(args.serve_ntpmon[0]), int(args.serve_ntpmon[1]))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ca = write_tls(directory)
        profile = str(directory / "profile.txt") if args.profile else ""
        for stack in args.stacks:
            rows += run_stack(stack, ca, directory, args.clients, args.seconds, profile)
        if profile and Path(profile).exists():
            print("\n".join(Path(profile).read_text().splitlines()[:45]))
    print(
        f"RPC stacks: trivial unary GetConfig, {args.clients} clients, {args.seconds:.0f} s each, "
        f"Connect over HTTP/1.1 + TLS and gRPC over HTTP/2 + TLS, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'stack':<21} {'protocol':<8} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'server CPU ms/call':>10} {'client CPU ms/call':>10} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for stack, protocol, text in rows:
        print(f"{stack:<21} {protocol:<8} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
