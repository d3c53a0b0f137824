"""Hot reload: a watch on state.json with a 500 ms debounce, plus the timer (agent.md §8.2).

The watch is inotify, polled in the manager's own thread; watchdog only where inotify is missing.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from agent.fake_management import ManagementServer
from agent.threads_helper import in_thread
from ntpmon.agent.config import manager as manager_module
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.dirwatch import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    DirEvent,
    InotifyUnavailableError,
)
from ntpmon.agent.config.manager import ConfigManager, WatchNews, is_relevant_event, watch_news
from ntpmon.agent.config.persist import replace_file
from ntpmon.agent.daemon.scope import Scope

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


def test_the_watch_needs_no_thread_of_its_own(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.load()
    before = set(threading.enumerate())
    with running(cfg):
        started = set(threading.enumerate()) - before
        assert len(started) == 1  # the manager's own thread: no watcher or timer threads


def test_without_inotify_watchdog_watches(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_inotify(directory: Path) -> None:
        raise InotifyUnavailableError("inotify is not available")

    monkeypatch.setattr(manager_module, "DirWatch", no_inotify)
    cfg = make_config()
    cfg.load()
    before = threading.active_count()
    with running(cfg):
        waiter = cfg.wait_for_config_change()
        replace_file(cfg.state_path, _state("seen-by-watchdog"))
        assert waiter.wait(3)
        assert cfg.api_key() == "seen-by-watchdog"
    time.sleep(0.2)
    assert threading.active_count() <= before  # the observer stopped with the manager


def test_a_removed_directory_reloads_at_once_then_the_timer_goes_on(
    make_config: MakeConfig,
) -> None:
    cfg = make_config()
    cfg.load()
    with running(cfg, debounce=60, first_reload=60) as manager:
        shutil.rmtree(cfg.env_dir)
        deadline = time.monotonic() + 5
        while manager.reloads < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert manager.reloads >= 1  # neither the debounce nor the timer: the watch is gone


RELEVANCE = [
    (IN_CLOSE_WRITE, "state.json", True),
    (IN_MODIFY, "state.json", True),
    (IN_CREATE, "state.json", True),
    (IN_MOVED_TO, "state.json", True),
    (IN_MOVED_FROM, "state.json", True),
    (IN_MOVED_FROM, "state.json.tmp", True),  # the atomic replace, seen from its source
    (IN_MOVED_TO, "state.json.tmp", True),
    (IN_CREATE, "state.json.tmp", False),  # writing the new file is not the change yet
    (IN_MODIFY, "state.json.tmp", False),
    (IN_CLOSE_WRITE, "cert.pem", False),
    (IN_MOVED_TO, "other.tmp", False),
    (IN_CREATE | IN_ISDIR, "state.json", False),
]


@pytest.mark.parametrize(("mask", "name", "relevant"), RELEVANCE)
def test_which_events_are_relevant(mask: int, name: str, relevant: bool) -> None:
    assert is_relevant_event(DirEvent(mask, name)) is relevant


def test_watch_news_takes_the_most_urgent_event() -> None:
    changed = DirEvent(IN_CLOSE_WRITE, "state.json")
    other = DirEvent(IN_CLOSE_WRITE, "cert.pem")
    assert watch_news([]) is WatchNews.NOTHING
    assert watch_news([other]) is WatchNews.NOTHING
    assert watch_news([other, changed]) is WatchNews.CHANGED
    assert watch_news([changed, DirEvent(IN_Q_OVERFLOW, "")]) is WatchNews.LOST_EVENTS
    assert watch_news([DirEvent(IN_Q_OVERFLOW, ""), DirEvent(IN_IGNORED, "")]) is WatchNews.GONE
