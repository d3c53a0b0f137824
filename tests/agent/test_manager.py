"""Hot reload: watchdog on state.json with a 500 ms debounce, plus the timer (agent.md §8.2)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from agent.fake_management import ManagementServer
from agent.threads_helper import in_thread
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.manager import ConfigManager
from ntpmon.agent.config.persist import replace_file
from ntpmon.agent.scope import Scope

MakeConfig = Callable[..., AppConfig]


def _state(key: str) -> bytes:
    return json.dumps({"API": {"APIKey": key}}).encode()


def running(cfg: AppConfig, **kwargs: float) -> AbstractContextManager[ConfigManager]:
    """The manager in a thread; the short settle lets the watch start before the test writes."""
    manager = ConfigManager(cfg, **kwargs)
    return _with_manager(manager, in_thread(manager.run, settle=0.3))


@contextmanager
def _with_manager(
    manager: ConfigManager, ctx: AbstractContextManager[Scope]
) -> Iterator[ConfigManager]:
    with ctx:
        yield manager


def test_atomic_rewrite_fires_waiter_and_reloads(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.load()
    with running(cfg):
        waiter = cfg.wait_for_config_change()
        replace_file(cfg.state_path, _state("changed-key"))
        assert waiter.wait(1.5)
        assert cfg.api_key() == "changed-key"
        # waiters fire before the network call; the reload then asks the API
        deadline = time.monotonic() + 2
        while mgmt.state.count("/monitor/api/config") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mgmt.state.count("/monitor/api/config") >= 1


def test_rapid_rewrites_are_debounced(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.load()
    with running(cfg) as manager:
        waiter = cfg.wait_for_config_change()
        for i in range(5):
            replace_file(cfg.state_path, _state(f"rapid-change-{i}"))
            time.sleep(0.01)
        assert waiter.wait(5)
        assert cfg.api_key() == "rapid-change-4"
        assert manager.reloads >= 1


def test_other_files_do_not_fire_but_in_place_write_does(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.load()
    with running(cfg):
        waiter = cfg.wait_for_config_change()
        (cfg.env_dir / "other.tmp").write_text("x")
        (cfg.env_dir / "cert.pem.tmp").write_text("x")
        assert not waiter.wait(0.8)
        cfg.state_path.write_bytes(_state("in-place"))
        assert waiter.wait(1.5)
        assert cfg.api_key() == "in-place"


def test_unwatchable_directory_runs_timer_only(make_config: MakeConfig) -> None:
    cfg = make_config(state_dir=Path("/dev/null/invalid"))
    manager = ConfigManager(cfg)
    scope = Scope()
    thread = threading.Thread(target=manager.run, args=(scope,))
    thread.start()
    scope.cancel()
    thread.join(2)
    assert not thread.is_alive()


def test_timer_reloads_and_start_stop_leaves_no_threads(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.load()
    before = threading.active_count()
    for _ in range(3):
        with running(cfg, first_reload=0.05, reload_ok=0.05) as manager:
            time.sleep(0.3)
        assert manager.reloads >= 1
    time.sleep(0.2)
    assert threading.active_count() <= before


def test_all_requests_went_to_loopback(make_config: MakeConfig, mgmt: ManagementServer) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    with running(cfg, first_reload=0.05) as manager:
        time.sleep(0.3)
        assert manager.reloads >= 1
    assert mgmt.state.requests
    assert {r.client for r in mgmt.state.requests} <= {"127.0.0.1", "::1"}
