"""``api ok``: can this agent reach the management API and monitor-api? (agent.md §6.5)"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import AuthorizationError
from ntpmon.agent.daemon.runner import monitor_api_url
from ntpmon.agent.transport import RPCSettings, open_monitor_client
from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)


class ApiCheckError(NtpmonError):
    """The diagnostics found a problem the operator must fix."""


def run_api_check(cfg: AppConfig, *, rpc: RPCSettings, environ: Mapping[str, str]) -> None:
    if not cfg.api_key():
        log.warning("no API key configured")
        raise ApiCheckError("no API key configured")
    http_ok = True
    try:
        cfg.load_api_app_config()
    except AuthorizationError as exc:
        raise ApiCheckError(f"{exc}; run ntppool-agent setup again") from None
    except NtpmonError as exc:
        log.error("management API", extra={"error": str(exc)})
        http_ok = False
    if not cfg.have_certificate() and http_ok:
        try:
            cfg.load_api_app_config(request_certificate=True)
        except NtpmonError as exc:
            log.error("certificate request", extra={"error": str(exc)})
    if cfg.have_certificate():
        _, not_after = cfg.certificate_dates()
        remaining = not_after - datetime.now(UTC)
        level = logging.WARNING if remaining < timedelta(hours=24) else logging.INFO
        log.log(
            level,
            "certificate",
            extra={"expires": not_after.isoformat(), "remaining": str(remaining)},
        )
    for family in (4, 6):
        ip = cfg.ip_config(family)
        log.info(f"IPv{family}", extra={"ip": str(ip.ip or ""), "status": ip.status})
    if not cfg.any_live():
        log.warning("no IP version is live; the status must be active or testing")
    if not cfg.have_certificate():
        log.info("API diagnostics complete (no certificate)")
        return
    try:
        client = open_monitor_client(rpc, cfg, monitor_api_url(cfg, environ))
        resp = client.get_config("")
        log.info("monitor API ok", extra={"samples": resp.samples})
        client.close()
    except NtpmonError as exc:
        log.error("monitor API", extra={"error": str(exc)})
    log.info("API diagnostics complete")
