"""HTTP client of the management API: config + certificate, OIDC tokens (agent.md §6.1, §6.3),
and the traceroute upload of agents without an MQTT connection (docs/traceroute.md).

TLS uses the system roots, or only the CA named by ``--ca-file`` (devel and tests); nothing ever
turns verification off.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from ntpmon.agent.config.depenv import api_url
from ntpmon.agent.config.httpclient import HttpClient, HttpResponse, TransportError
from ntpmon.agent.config.statefile import IPConfig, MonitorData, StateFormatError, parse_ip
from ntpmon.common.errors import NtpmonError
from ntpmon.common.version import user_agent

log = logging.getLogger(__name__)

PROGRAM = "ntppool-agent"
HTTP_TIMEOUT = 30.0


class ManagementError(NtpmonError):
    """The management API could not be reached or answered with an error."""


class AuthorizationError(ManagementError):
    """The API key was refused (HTTP 401)."""

    def __init__(self, message: str = "api key unauthorized") -> None:
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """One answer of the config endpoint."""

    data: MonitorData
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """System roots, or only ``ca_file`` when given."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    return ctx


def _trace(resp: HttpResponse) -> str:
    return resp.headers.get("Traceid", "")


def _ip_config(doc: Any, family: int) -> IPConfig:
    if doc is None:
        return IPConfig()
    if not isinstance(doc, dict):
        raise ManagementError(f"config: ipv{family} must be an object")
    try:
        ip = parse_ip(doc.get("ip") or "", family, f"config ipv{family}")
    except StateFormatError as exc:
        raise ManagementError(str(exc)) from None
    if ip is None:
        return IPConfig()
    return IPConfig(str(doc.get("status") or ""), ip)


def parse_config(doc: Any, otlp_log_level: str) -> ApiConfig:
    """Validate the config JSON; a wrong-family or unparseable IP fails the whole load."""
    if not isinstance(doc, dict):
        raise ManagementError("config response is not a JSON object")
    tls = doc.get("tls") or {}
    if not isinstance(tls, dict):
        raise ManagementError("config: tls must be an object")
    data = MonitorData(
        name=str(doc.get("name") or ""),
        tls_name=str(doc.get("tls_name") or ""),
        ipv4=_ip_config(doc.get("ipv4"), 4),
        ipv6=_ip_config(doc.get("ipv6"), 6),
        otlp_log_level=otlp_log_level,
    )
    return ApiConfig(
        data,
        str(tls.get("cert") or "").encode(),
        str(tls.get("key") or "").encode(),
        str(tls.get("ca") or "").encode(),
    )


class ManagementClient:
    """Config and token calls for one management API base URL."""

    def __init__(self, base: str, *, ca_file: str | None = None) -> None:
        self.base = base
        self._http = HttpClient(
            context=tls_context(ca_file), timeout=HTTP_TIMEOUT, user_agent=user_agent(PROGRAM)
        )

    def close(self) -> None:
        """Nothing to release: every request uses its own connection."""

    def _request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        try:
            return self._http.request(method, url, **kwargs)
        except TransportError as exc:
            raise ManagementError(str(exc)) from None

    def _authorized_json(
        self, method: str, path: str, api_key: str, error: str, ok: range, **kwargs: Any
    ) -> Any:
        """Call with ``Bearer <api key>``; 401 → AuthorizationError; other statuses → ``error``."""
        resp = self._request(
            method,
            api_url(self.base, path),
            headers={"Authorization": f"Bearer {api_key}"},
            **kwargs,
        )
        if resp.status_code == 401:
            raise AuthorizationError()
        if resp.status_code not in ok:
            raise ManagementError(f"{error}: {resp.status_code} (trace {_trace(resp)})")
        try:
            return resp.json()
        except ValueError:
            raise ManagementError(f"{path}: response is not JSON") from None

    def get_config(
        self, api_key: str, *, request_certificate: bool, otlp_log_level: str = ""
    ) -> ApiConfig:
        """GET the monitor's config (and a new certificate when asked)."""
        params = {"request_certificate": "true"} if request_certificate else None
        doc = self._authorized_json(
            "GET",
            "monitor/api/config",
            api_key,
            "unexpected response code",
            range(200, 300),
            params=params,
        )
        return parse_config(doc, otlp_log_level)

    def upload_traceroute(self, api_key: str, payload: bytes) -> None:
        """POST one traceroute message (with its ``Monitor``); ManagementError when refused."""
        self._authorized_json(
            "POST",
            "monitor/api/traceroute",
            api_key,
            "traceroute upload refused",
            range(200, 300),
            json_bytes=payload,
        )

    def get_token(self, api_key: str, expires_in: int = 3600) -> tuple[str, int]:
        """Exchange the API key for a JWT; returns (token, lifetime in seconds)."""
        if not api_key:
            raise ManagementError("no API key")
        doc = self._authorized_json(
            "POST",
            "api/oidc/token",
            api_key,
            "unexpected OIDC token response",
            range(200, 201),
            json_body={"expires_in": expires_in},
        )
        if not isinstance(doc, dict):
            raise ManagementError("OIDC token response is not a JSON object")
        token = str(doc.get("access_token") or "")
        if not token:
            raise ManagementError("OIDC token response without access_token")
        if doc.get("token_type") != "Bearer":
            log.warning("unexpected token type", extra={"token_type": doc.get("token_type")})
        lifetime = int(doc.get("expires_in") or 0) or 3600
        return token, lifetime
