"""Start-up gates of ``monitor`` (agent.md §7): API key → certificate → JWT → a live IP version.

Each gate waits with its own back-off so a volunteer's host never hammers the API, and wakes
at once on a config change (e.g. ``setup`` run from another shell, seen by the manager).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import AuthorizationError
from ntpmon.agent.daemon.backoff import Backoff
from ntpmon.agent.daemon.scope import Cancelled, Scope
from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

AUTH_BACKOFF_WINDOW = 3600.0


class GateError(NtpmonError):
    """A gate gave up: the agent cannot run without operator action."""


def _setup_hint(cfg: AppConfig) -> str:
    return f"ntppool-agent setup --env {cfg.env.value} --state-dir '{cfg.state_dir}'"


def wait_for_api_key(
    cfg: AppConfig,
    scope: Scope,
    *,
    clock: Callable[[], float] = time.monotonic,
    interactive: bool | None = None,
) -> None:
    """Until a usable API key is stored; non-auth load errors are fatal."""
    missing, refused = Backoff(30, 300), Backoff(600, 4 * 3600)
    last_refusal: float | None = None
    first = True
    while True:
        waiter = cfg.wait_for_config_change(scope)
        try:
            cfg.load()
        except AuthorizationError:
            last_refusal = clock()
        if cfg.api_key():
            waiter.cancel()
            return
        if last_refusal is not None and clock() - last_refusal < AUTH_BACKOFF_WINDOW:
            delay = refused.next_delay()
        else:
            delay = missing.next_delay()
        if first or delay >= 120:
            log.warning(
                "no API key, please run ntppool-agent setup", extra={"command": _setup_hint(cfg)}
            )
        if first and (sys.stdin.isatty() if interactive is None else interactive):
            print(f"Setup API key with:\n\n    {_setup_hint(cfg)}\n")
        first = False
        fired = waiter.wait(delay)
        waiter.cancel()
        if scope.cancelled:
            raise Cancelled()
        if fired:
            missing.reset()
            refused.reset()


def wait_for_certificate(cfg: AppConfig, scope: Scope) -> None:
    """Until a certificate that is not due for renewal is loaded (pending monitors wait here)."""
    backoff = Backoff(4, 120)
    while True:
        if cfg.certificate_validity()[0]:
            return
        try:
            cfg.load()
        except AuthorizationError as exc:
            raise GateError(f"waiting for certificate: {exc}") from None
        except NtpmonError as exc:
            log.warning("could not load certificate", extra={"error": str(exc)})
        if cfg.certificate_validity()[0]:
            return
        log.info("waiting for a certificate (is the monitor approved?)")
        if not scope.sleep(backoff.next_delay()):
            raise Cancelled()


def wait_for_jwt(cfg: AppConfig, scope: Scope) -> None:
    """Until the token endpoint gives us a JWT."""
    backoff = Backoff(2, 120)
    while True:
        try:
            cfg.jwt()
            return
        except AuthorizationError as exc:
            raise GateError(f"getting JWT: {exc}") from None
        except NtpmonError as exc:
            log.warning("could not get JWT", extra={"error": str(exc)})
        if not scope.sleep(backoff.next_delay()):
            raise Cancelled()


def wait_until_configured(cfg: AppConfig, scope: Scope) -> None:
    wait_for_api_key(cfg, scope)
    wait_for_certificate(cfg, scope)
    wait_for_jwt(cfg, scope)


def wait_for_live(cfg: AppConfig, scope: Scope, families: Iterable[int] = (4, 6)) -> None:
    """Until one of ``families`` is active/testing; config changes reset the back-off."""
    wanted = tuple(families)
    backoff = Backoff(60, 1200)
    while not any(cfg.is_live(f) for f in wanted):
        waiter = cfg.wait_for_config_change(scope)
        fired = waiter.wait(backoff.next_delay())
        waiter.cancel()
        if scope.cancelled:
            raise Cancelled()
        if fired:
            backoff.reset()
            continue
        try:
            cfg.load()
        except AuthorizationError as exc:
            log.warning("API key refused while waiting", extra={"error": str(exc)})


def wait_until_live(cfg: AppConfig, scope: Scope, families: Iterable[int] = (4, 6)) -> None:
    wait_until_configured(cfg, scope)
    wait_for_live(cfg, scope, families)
