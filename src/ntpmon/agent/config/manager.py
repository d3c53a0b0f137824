"""Hot reload (agent.md §8.2): a watch on ``state.json`` plus a periodic reload.

The watch makes ``setup`` in another shell (or an operator's edit) take effect within a second;
the timer renews certificates and follows status changes even when nothing touches the file.

All of it runs in the manager's one thread: it polls the inotify descriptor (``dirwatch``) and
a wake-up pipe, and keeps the debounce and the timer as deadlines. Where inotify is missing
(not Linux), watchdog's observer watches instead and pokes the pipe.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ntpmon.agent.config import persist
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
    DirWatch,
    InotifyUnavailableError,
)
from ntpmon.agent.daemon.scope import Scope
from ntpmon.common.errors import NtpmonError

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

log = logging.getLogger(__name__)

DEBOUNCE = 0.5
RELOAD_OK = 300.0
RELOAD_FAILED = 120.0
MIN_INTERVAL, MAX_INTERVAL = 60.0, 3600.0
_RELEVANT = {persist.STATE_FILE, persist.STATE_FILE + ".tmp"}
_WRITTEN = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE
_RENAMED = IN_MOVED_FROM | IN_MOVED_TO


def is_relevant_event(event: DirEvent) -> bool:
    """state.json written, created or renamed (also into or out of the directory), or
    state.json.tmp renamed (the atomic replace)."""
    if event.mask & IN_ISDIR:
        return False
    if event.mask & _RENAMED:
        return event.name in _RELEVANT
    return bool(event.mask & _WRITTEN) and event.name == persist.STATE_FILE


class WatchNews(enum.Enum):
    """What a read of the watch means for the manager."""

    NOTHING = enum.auto()
    CHANGED = enum.auto()  # debounce, then reload
    LOST_EVENTS = enum.auto()  # the kernel queue overflowed: reload at once
    GONE = enum.auto()  # the directory went away: reload at once, then timer only


def watch_news(events: list[DirEvent]) -> WatchNews:
    """The most urgent meaning of a batch of events."""
    if any(e.mask & IN_IGNORED for e in events):
        return WatchNews.GONE
    if any(e.mask & IN_Q_OVERFLOW for e in events):
        return WatchNews.LOST_EVENTS
    if any(is_relevant_event(e) for e in events):
        return WatchNews.CHANGED
    return WatchNews.NOTHING


def is_relevant(event: FileSystemEvent) -> bool:
    """watchdog's view (the fallback): state.json written/created/moved, or state.json.tmp
    renamed (atomic replace)."""
    if event.is_directory or event.event_type not in {"modified", "created", "moved", "closed"}:
        return False
    names = {Path(str(event.src_path)).name}
    dest = getattr(event, "dest_path", "")
    if dest:
        names.add(Path(str(dest)).name)
    if event.event_type == "moved":
        return bool(names & _RELEVANT)
    return persist.STATE_FILE in names


class Wakeup:
    """A self-pipe that other threads poke to wake the manager's ``poll``.

    Poking after :meth:`close` does nothing: a scope runs its cancel callbacks after marking
    itself cancelled, so the manager may already have returned and closed the pipe.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def poke(self) -> None:
        with self._lock, contextlib.suppress(BlockingIOError):  # full: it is awake anyway
            if not self._closed:
                os.write(self._write, b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read)
                os.close(self._write)


def _poll_ms(seconds: float) -> int:
    """``poll``'s timeout, rounded up so a deadline is never polled for in a busy loop."""
    return max(0, math.ceil(seconds * 1000))


class ConfigManager:
    """Reloads AppConfig on file changes (debounced) and on a timer, until the scope ends."""

    def __init__(
        self,
        cfg: AppConfig,
        *,
        debounce: float = DEBOUNCE,
        first_reload: float = RELOAD_OK,
        reload_ok: float = RELOAD_OK,
        reload_failed: float = RELOAD_FAILED,
    ) -> None:
        self.cfg = cfg
        self.debounce = debounce
        self.first_reload = first_reload
        self.reload_ok = reload_ok
        self.reload_failed = reload_failed
        self.reloads = 0
        self._live = {4: False, 6: False}

    def run(self, scope: Scope) -> None:
        """Block until ``scope`` is cancelled; never raises for watcher or reload problems."""
        wakeup = Wakeup()
        remove = scope.on_cancel(wakeup.poke)
        watch, stop_watching = self._start_watch(wakeup)
        try:
            self._loop(scope, wakeup, watch)
        finally:
            remove()
            stop_watching()
            wakeup.close()

    def _loop(self, scope: Scope, wakeup: Wakeup, watch: DirWatch | None) -> None:
        poller = select.poll()
        poller.register(wakeup, select.POLLIN)
        if watch is not None:
            poller.register(watch, select.POLLIN)
        reload_at = time.monotonic() + self.first_reload
        settle_at: float | None = None  # a change was seen: reload once changes stop this long
        while True:
            due = reload_at if settle_at is None else min(reload_at, settle_at)
            ready = {fd for fd, _ in poller.poll(_poll_ms(due - time.monotonic()))}
            if scope.cancelled:
                return
            if wakeup.fileno() in ready:  # the fallback watcher saw a change
                wakeup.drain()
                settle_at = time.monotonic() + self.debounce
            if watch is not None and watch.fileno() in ready:
                news = watch_news(watch.read())
                if news is WatchNews.CHANGED:
                    settle_at = time.monotonic() + self.debounce
                elif news is not WatchNews.NOTHING:
                    log.warning("state directory watch failed", extra={"error": news.name})
                    settle_at = time.monotonic()
                if news is WatchNews.GONE:
                    poller.unregister(watch)
                    watch.close()
                    watch = None
            now = time.monotonic()
            if settle_at is not None and now >= settle_at:
                settle_at = None
            elif now < reload_at:
                continue
            ok = self.reload()
            delay = self.reload_ok if ok else self.reload_failed
            reload_at = time.monotonic() + min(
                max(delay, min(MIN_INTERVAL, self.reload_ok)), MAX_INTERVAL
            )

    def _start_watch(self, wakeup: Wakeup) -> tuple[DirWatch | None, Callable[[], None]]:
        """The inotify watch (or watchdog's, which pokes ``wakeup``) and how to stop it."""
        try:
            persist.ensure_dir(self.cfg.env_dir)
            try:
                watch = DirWatch(self.cfg.env_dir)
            except InotifyUnavailableError:
                return None, _watch_with_watchdog(self.cfg.env_dir, wakeup.poke)
        except (OSError, NtpmonError) as exc:
            log.warning("cannot watch state directory, timer only", extra={"error": str(exc)})
            return None, lambda: None
        return watch, watch.close

    def reload(self) -> bool:
        """One reload: load(), refresh the JWT when due, log live-status changes."""
        self.reloads += 1
        try:
            self.cfg.load()
        except NtpmonError as exc:
            log.warning("config reload failed", extra={"error": str(exc)})
            return False
        if self.cfg.tokens.needs_refresh() and self.cfg.api_key():
            try:
                self.cfg.jwt()
            except NtpmonError as exc:
                log.warning("JWT refresh failed", extra={"error": str(exc)})
        for family in (4, 6):
            live = self.cfg.is_live(family)
            if live != self._live[family]:
                log.info(
                    f"IPv{family} protocol status changed",
                    extra={"live": live, "status": self.cfg.ip_config(family).status},
                )
                self._live[family] = live
        return True


def _watch_with_watchdog(directory: Path, changed: Callable[[], None]) -> Callable[[], None]:
    """watchdog's observer where there is no inotify; returns how to stop it."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if is_relevant(event):
                changed()

    observer = Observer()
    observer.schedule(Handler(), str(directory), recursive=False)
    observer.daemon = True
    observer.start()

    def stop() -> None:
        observer.stop()
        observer.join(timeout=2)

    return stop
