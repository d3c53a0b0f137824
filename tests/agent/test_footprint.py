"""The long-running ``monitor`` stays small: a real ``monitor --once`` run in its own process
does not load typer, click, pydantic, cryptography, the OpenTelemetry SDK (with telemetry off;
exporting needs it), asyncio (grpcio's asyncio API is deferred), watchdog (inotify watches the
state directory), with no broker configured paho-mqtt, and in the default Connect mode not
grpcio at all; help and other command lines still go through typer (docs/agent.md, Memory
footprint)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.conftest import TLS_NAME
from agent.fake_connect_api import FakeConnectApi
from agent.fake_management import ManagementServer
from agent.fake_monitor_api import FakeMonitorApi
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.testing.ntpserver import NTPResponder
from ntpmon.testing.otlpreceiver import OtlpReceiver

HEAVY = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "cryptography",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "paho",
    "ntpmon.agent.mqtt.client",
    "asyncio",
    "grpc.aio",
    "watchdog",
)
# runs the console-script entry and reports, at exit, which heavy packages were loaded
WRAPPER = """
import atexit, json, sys
heavy = json.loads(sys.argv[1])
atexit.register(lambda: print("LOADED " + json.dumps(
    sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules))
), file=sys.stderr))
from ntpmon.agent.cli.main import main
main(sys.argv[2:])
"""


def run_agent(
    *args: str, env: dict[str, str], heavy: tuple[str, ...] = HEAVY
) -> tuple[int, str, list[str]]:
    """(exit status, stderr, heavy packages loaded) of one agent run."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_"))}
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(heavy), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("LOADED ")]
    assert marker, done.stderr
    return done.returncode, done.stderr, json.loads(marker[-1].removeprefix("LOADED "))


def monitor_once(
    mgmt: ManagementServer,
    monitor_api: FakeMonitorApi | FakeConnectApi,
    responders: list[NTPResponder],
    ca_file: Path,
    state_dir: Path,
    heavy: tuple[str, ...],
    **env: str,
) -> list[str]:
    """Run ``monitor --once`` against the stand-ins; the heavy packages it loaded."""
    mgmt.state.config_doc = {
        "name": "agent1",
        "tls_name": TLS_NAME,
        "ipv4": {"status": "testing", "ip": "127.0.0.1"},
        "ipv6": {"status": "", "ip": ""},
    }
    mgmt.state.token_status = 200
    mgmt.state.token_doc = {"access_token": "jwt", "token_type": "Bearer", "expires_in": 3600}
    env |= {
        "API_HOST": mgmt.url,
        "DEVEL_API_SERVER": monitor_api.url,
        "MONITOR_CA_FILE": str(ca_file),
        "MONITOR_NTP_PORT": str(responders[0].port),
        "MONITOR_ALLOW_LOOPBACK": "true",
        "MONITOR_RPC_PROTOCOL": monitor_api.protocol,
    }
    code, err, loaded = run_agent(
        "-e", "devel", "--state-dir", str(state_dir), "--no-ipv6", "monitor", "--once",
        env=env,
        heavy=heavy,
    )  # fmt: skip
    assert code == 0, err
    assert monitor_api.servicer.count("SubmitResults") == 1
    return loaded


def test_monitor_once_runs_without_heavy_packages(
    live_config: AppConfig,
    mgmt: ManagementServer,
    monitor_api: FakeMonitorApi | FakeConnectApi,
    responders: list[NTPResponder],
    ca_file: Path,
) -> None:
    """On both protocols; in the default Connect mode grpcio is not even imported."""
    heavy = HEAVY + (("grpc",) if monitor_api.protocol == "connect" else ())
    state_dir = live_config.env_dir.parent
    # exporting loads the SDK, as it must (docs/agent.md)
    loaded = monitor_once(
        mgmt, monitor_api, responders, ca_file, state_dir, heavy, MONITOR_TELEMETRY="off"
    )
    assert loaded == []


def test_exporting_telemetry_needs_no_http_stack_beyond_the_standard_library(
    live_config: AppConfig,
    mgmt: ManagementServer,
    monitor_api: FakeMonitorApi | FakeConnectApi,
    responders: list[NTPResponder],
    ca_file: Path,
    receiver: OtlpReceiver,
) -> None:
    """The SDK and the OTLP encoders load; requests, urllib3 and the library's HTTP exporters
    (~7 MB, docs/agent.md) do not."""
    heavy = ("opentelemetry.sdk", "requests", "urllib3", "opentelemetry.exporter.otlp.proto.http")
    state_dir = live_config.env_dir.parent
    loaded = monitor_once(
        mgmt, monitor_api, responders, ca_file, state_dir, heavy,
        MONITOR_TELEMETRY="on", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
    )  # fmt: skip
    assert loaded == ["opentelemetry.sdk"]
    assert receiver.received("/v1/traces")


def test_errors_on_the_light_path_read_as_before(tmp_path: Path) -> None:
    (tmp_path / "devel").mkdir(mode=0o700)
    (tmp_path / "devel" / "state.json").write_text('{"API":')
    code, err, loaded = run_agent("monitor", "-e", "devel", "--state-dir", str(tmp_path), env={})
    assert code == 1
    assert "ntppool-agent: error: " in err and "state.json is not valid JSON" in err
    assert loaded == []
    code, err, loaded = run_agent("--log-level", "loud", "monitor", env={})
    assert (code, loaded) == (1, [])
    assert "ntppool-agent: error: invalid log level" in err


def test_help_and_other_commands_still_use_typer() -> None:
    code, err, loaded = run_agent("monitor", "--help", env={})
    assert code == 0
    assert {"typer", "rich"} <= set(loaded)  # typer vendors its own click
    code, err, loaded = run_agent("monitor", "--no-such-option", env={})
    assert code == 2 and "No such option" in err
    assert "typer" in loaded


# a grpc server and calls through both APIs after import_grpc_without_asyncio, in a fresh process
DEFERRED_GRPC = """
import sys
from ntpmon.agent.daemon.footprint import import_grpc_without_asyncio
assert import_grpc_without_asyncio()
assert "asyncio" not in sys.modules and "grpc.aio" not in sys.modules
import grpc
from concurrent.futures import ThreadPoolExecutor
echo = grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"re:" + req)
server = grpc.server(ThreadPoolExecutor(2))
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", {"Echo": echo})])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    assert channel.unary_unary("/t.T/Echo")(b"sync", timeout=10) == b"re:sync"
assert "asyncio" not in sys.modules, "the synchronous API loaded asyncio"

async def call():
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await channel.unary_unary("/t.T/Echo")(b"aio", timeout=10)

import asyncio
assert asyncio.run(call()) == b"re:aio"
assert sys.modules["grpc.aio"] is not None and "asyncio.base_events" in sys.modules
assert not import_grpc_without_asyncio()  # grpc is imported: nothing to do
server.stop(None)
print("OK")
"""


def test_grpc_without_asyncio_still_serves_both_apis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED_GRPC],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OK"
