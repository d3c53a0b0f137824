"""``setup``: register this host with the management API and store the API key (agent.md §6.4).

The server must see the same Registration-ID from every wanted address family, so one request
is sent over each family (bound to 0.0.0.0 / :: or MONITOR_LOCAL_IPV4/6) before polling.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.depenv import registration_url
from ntpmon.agent.config.httpclient import HttpClient, TransportError
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementError, tls_context
from ntpmon.common.errors import NtpmonError
from ntpmon.common.ulid import new_ulid
from ntpmon.common.version import user_agent

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 40.0
SERVER_ERROR_WAIT = 10.0
POLL_WAIT, POLL_WAIT_AFTER_URL = 0.2, 5.0


@dataclass(frozen=True, slots=True)
class SetupRequest:
    hostname: str | None
    account: str | None
    ipv4: bool
    ipv6: bool


def _local_address(family: int, environ: Mapping[str, str]) -> str:
    if family == 4:
        return environ.get("MONITOR_LOCAL_IPV4") or "0.0.0.0"  # noqa: S104 - family selector
    return environ.get("MONITOR_LOCAL_IPV6") or "::"


def _family_client(family: int, ca_file: str | None, environ: Mapping[str, str]) -> HttpClient:
    """Requests bound to the family's local address, so the server sees that family."""
    return HttpClient(
        context=tls_context(ca_file),
        timeout=SETUP_TIMEOUT,
        user_agent=user_agent("ntppool-agent"),
        source_address=_local_address(family, environ),
    )


def run_setup(
    cfg: AppConfig,
    req: SetupRequest,
    *,
    api_base: str,
    ca_file: str | None,
    environ: Mapping[str, str],
    out: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Register until the server answers accepted/completed or sends a text message."""
    old_key = cfg.api_key()
    if old_key:
        _refresh_existing(cfg)
    if not req.ipv4 and not req.ipv6:
        log.info("registration for both IP versions disabled")
        return
    reg_id = new_ulid(datetime.now(UTC)).text
    hostname = req.hostname if req.hostname is not None else _system_hostname()
    form = {k: v for k, v in (("hostname", hostname), ("a", req.account or "")) if v}
    headers = {
        "User-Agent": user_agent("ntppool-agent"),
        "Registration-ID": reg_id,
        "Accept": "application/json, text/plain",
    }
    if old_key:
        headers["Authorization"] = f"Bearer {old_key}"
    wanted = {4: req.ipv4, 6: req.ipv6}
    pending = dict(wanted)
    clients: dict[int, HttpClient] = {}  # one per family, bound to its local address
    url_seen, printed = "", False
    while True:
        family = next((f for f in (4, 6) if pending[f]), 4 if wanted[4] else 6)
        if family not in clients:
            clients[family] = _family_client(family, ca_file, environ)
        try:
            resp = clients[family].request(
                "POST", registration_url(api_base), form=form or None, headers=headers
            )
        except TransportError as exc:
            raise ManagementError(f"registration request over IPv{family}: {exc}") from None
        if resp.status_code >= 500:
            log.warning("registration server error", extra={"status": resp.status_code})
            sleep(SERVER_ERROR_WAIT)
            continue
        pending[family] = False
        media = resp.media_type
        if media == "text/plain":
            out(resp.text)
            return
        if media != "application/json":
            raise ManagementError(f"unexpected content type: {media}")
        try:
            doc = resp.json()
        except ValueError:
            raise ManagementError("registration response is not valid JSON") from None
        url_seen = str(doc.get("URL") or "") or url_seen
        if url_seen and not any(pending.values()) and not printed:
            out(
                "\nPlease visit the following URL to complete the monitor registration:"
                f"\n\n    {url_seen}\n"
            )
            printed = True
        status = doc.get("Status")
        if status == "accepted":
            _accept(cfg, str(doc.get("APIToken") or ""))
            return
        if status == "completed":
            log.info("registration already completed")
            return
        sleep(POLL_WAIT_AFTER_URL if printed else POLL_WAIT)


def _accept(cfg: AppConfig, token: str) -> None:
    if not token:
        log.error("registration accepted but no API key was sent")
        return
    cfg.set_api_key(token)
    log.info("setup complete; the monitor needs activation by an administrator")
    log.info(
        "start the monitor with",
        extra={
            "command": f"ntppool-agent monitor -e {cfg.env.value} --state-dir '{cfg.state_dir}'"
        },
    )


def _refresh_existing(cfg: AppConfig) -> None:
    """With a key already stored, try to fetch a certificate first (errors only logged)."""
    try:
        if not cfg.have_certificate():
            cfg.load_api_app_config(request_certificate=True)
    except AuthorizationError:
        log.warning("stored API key refused, continuing with setup")
    except NtpmonError as exc:
        log.debug("could not refresh config", extra={"error": str(exc)})
    for family in (4, 6):
        ip = cfg.ip_config(family)
        log.info(f"IPv{family} address", extra={"ip": str(ip.ip or ""), "status": ip.status})


def _system_hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""
