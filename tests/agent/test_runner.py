"""``monitor`` as a whole: gates, manager and workers; hot reload while it runs (§8, §10.1)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from agent.fake_connect_api import FakeConnectApi
from agent.fake_management import ManagementServer
from agent.fake_monitor_api import FakeMonitorApi
from agent.threads_helper import in_thread, wait_for
from ntpmon.agent.cli.options import DevelKnobs
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.persist import replace_file
from ntpmon.agent.daemon.runner import MonitorOptions, run_monitor
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.daemon.worker import WorkerError, WorkerHooks
from ntpmon.agent.transport import RPCSettings
from ntpmon.ntp.instruments import ProbeInstruments
from ntpmon.testing.ntpserver import NTPResponder

pytestmark = pytest.mark.timeout(90)
Api = FakeMonitorApi | FakeConnectApi
TLS_NAME = "runner-abc123.devel.mon.ntppool.dev"


def config_doc(status: str) -> dict[str, object]:
    return {
        "name": "runner",
        "tls_name": TLS_NAME,
        "ipv4": {"status": status, "ip": "127.0.0.1"},
        "ipv6": {"status": "", "ip": ""},
    }


def monitoring(
    cfg: AppConfig, api: Api, port: int, **kwargs: bool
) -> AbstractContextManager[Scope]:
    rpc = RPCSettings(api.protocol)
    opts = MonitorOptions(
        ipv6=False, rpc=rpc, knobs=DevelKnobs(port, True), telemetry=False, **kwargs
    )
    return in_thread(
        lambda scope: run_monitor(cfg, opts, scope, environ={"DEVEL_API_SERVER": api.url})
    )


@pytest.fixture
def registered(
    make_config: Callable[..., AppConfig], mgmt: ManagementServer, tmp_path: Path
) -> AppConfig:
    mgmt.state.config_doc = config_doc("testing")
    mgmt.state.token_status = 200
    mgmt.state.token_doc = {"access_token": "jwt-1", "token_type": "Bearer", "expires_in": 3600}
    cfg = make_config(state_dir=tmp_path / "runner")
    cfg.set_api_key("key-1")
    return cfg


def test_gates_then_batches_with_jwt(
    registered: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
    mgmt: ManagementServer,
) -> None:
    with monitoring(registered, monitor_api, responders[0].port, once=True):
        wait_for(lambda: monitor_api.servicer.count("SubmitResults") >= 1)
    submit = next(c for c in monitor_api.servicer.calls if c.method == "SubmitResults")
    assert submit.metadata["authorization"] == "Bearer jwt-1"
    assert registered.have_certificate() and registered.ca_path.exists()


def test_hot_reload_state_change_reaches_workers(
    registered: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
    mgmt: ManagementServer,
) -> None:
    """Rewrite state.json while monitor runs: the manager reloads and the workers react."""
    servicer = monitor_api.servicer
    with monitoring(registered, monitor_api, responders[0].port):
        wait_for(lambda: servicer.count("SubmitResults") >= 1)
        configs_before = servicer.count("GetConfig")
        # the operator pauses the monitor; a state file change makes the agent notice at once
        mgmt.state.config_doc = config_doc("paused")
        state = json.loads(registered.state_path.read_text())
        state["API"]["APIKey"] = "key-2"
        replace_file(registered.state_path, json.dumps(state).encode())
        wait_for(lambda: registered.api_key() == "key-2" and not registered.is_live(4))
        wait_for(lambda: servicer.count("GetConfig") > configs_before)  # immediate GetConfig
        time.sleep(0.5)
        paused_servers = servicer.count("GetServers")
        time.sleep(1.5)
        assert servicer.count("GetServers") == paused_servers  # no work while paused
        # reactivated: the next reload wakes the worker without a restart
        mgmt.state.config_doc = config_doc("active")
        replace_file(registered.state_path, json.dumps(state).encode() + b"\n")
        wait_for(lambda: servicer.count("GetServers") > paused_servers)
    assert mgmt.state.requests[-1].headers["Authorization"] in {"Bearer key-2"}


def test_sanity_only_passes_with_a_good_clock(
    registered: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
) -> None:
    opts = MonitorOptions(
        sanity_only=True,
        ipv6=False,
        rpc=RPCSettings(monitor_api.protocol),
        knobs=DevelKnobs(responders[0].port, True),
        telemetry=False,
    )
    run_monitor(registered, opts, Scope(), environ={"DEVEL_API_SERVER": monitor_api.url})
    assert monitor_api.servicer.count("GetServers") == 0


def test_sanity_only_fails_when_the_local_clock_is_off(
    registered: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
) -> None:
    for responder in responders:
        responder.configure(offset=0.5)  # every base check says we are 500 ms off
    opts = MonitorOptions(
        sanity_only=True,
        ipv6=False,
        rpc=RPCSettings(monitor_api.protocol),
        knobs=DevelKnobs(responders[0].port, True),
        telemetry=False,
    )
    with pytest.raises(WorkerError, match="IPv4: health check failed"):
        run_monitor(registered, opts, Scope(), environ={"DEVEL_API_SERVER": monitor_api.url})


def test_hooks_and_background_tasks_for_mqtt(
    registered: AppConfig,
    monitor_api: Api,
    responders: list[NTPResponder],
) -> None:
    configs: list[int] = []
    background_ended = threading.Event()

    def background(cfg: AppConfig, scope: Scope, instruments: ProbeInstruments) -> None:
        assert isinstance(instruments, ProbeInstruments)  # the telemetry's, for MQTT's probes
        scope.wait()
        background_ended.set()

    hooks = WorkerHooks(on_config=lambda family, resp: configs.append(family))
    opts = MonitorOptions(
        ipv6=False,
        rpc=RPCSettings(monitor_api.protocol),
        knobs=DevelKnobs(responders[0].port, True),
        telemetry=False,
    )
    with in_thread(
        lambda scope: run_monitor(
            registered,
            opts,
            scope,
            environ={"DEVEL_API_SERVER": monitor_api.url},
            hooks=hooks,
            background=[background],
        )
    ):
        wait_for(lambda: monitor_api.servicer.count("SubmitResults") >= 1)
        assert not background_ended.is_set()
    assert background_ended.is_set()
    assert configs and set(configs) == {4}
