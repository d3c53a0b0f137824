"""Hot reload (agent.md §8.2): a watchdog watch on ``state.json`` plus a periodic reload.

The watch makes ``setup`` in another shell (or an operator's edit) take effect within a second;
the timer renews certificates and follows status changes even when nothing touches the file.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ntpmon.agent.config import persist
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.scope import Scope
from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

DEBOUNCE = 0.5
RELOAD_OK = 300.0
RELOAD_FAILED = 120.0
MIN_INTERVAL, MAX_INTERVAL = 60.0, 3600.0
_RELEVANT = {persist.STATE_FILE, persist.STATE_FILE + ".tmp"}


def is_relevant(event: FileSystemEvent) -> bool:
    """state.json written/created/moved, or state.json.tmp renamed (atomic replace)."""
    if event.is_directory or event.event_type not in {"modified", "created", "moved", "closed"}:
        return False
    names = {Path(str(event.src_path)).name}
    dest = getattr(event, "dest_path", "")
    if dest:
        names.add(Path(str(dest)).name)
    if event.event_type == "moved":
        return bool(names & _RELEVANT)
    return persist.STATE_FILE in names


class _Handler(FileSystemEventHandler):
    def __init__(self, debounce: DebounceTimer) -> None:
        self._debounce = debounce

    def on_any_event(self, event: FileSystemEvent) -> None:
        if is_relevant(event):
            self._debounce.kick()


class DebounceTimer:
    """Each kick (re)starts the delay; ``fire`` runs once the kicks stop for ``delay``."""

    def __init__(self, delay: float, fire: threading.Event) -> None:
        self.delay = delay
        self._fire = fire
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def kick(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self._fire.set)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


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
        trigger = threading.Event()
        remove = scope.on_cancel(trigger.set)
        debounce = DebounceTimer(self.debounce, trigger)
        observer = self._start_observer(debounce)
        delay = self.first_reload
        try:
            while not scope.cancelled:
                trigger.wait(delay)
                if scope.cancelled:
                    break
                trigger.clear()
                ok = self.reload()
                delay = self.reload_ok if ok else self.reload_failed
                delay = min(max(delay, min(MIN_INTERVAL, self.reload_ok)), MAX_INTERVAL)
        finally:
            remove()
            debounce.cancel()
            if observer is not None:
                observer.stop()
                observer.join(timeout=2)

    def _start_observer(self, debounce: DebounceTimer) -> Observer | None:  # type: ignore[valid-type]
        try:
            persist.ensure_dir(self.cfg.env_dir)
            observer = Observer()
            observer.schedule(_Handler(debounce), str(self.cfg.env_dir), recursive=False)
            observer.daemon = True
            observer.start()
        except (OSError, NtpmonError) as exc:
            log.warning("cannot watch state directory, timer only", extra={"error": str(exc)})
            return None
        return observer

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
