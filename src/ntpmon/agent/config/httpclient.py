"""A small HTTP(S) client on the standard library for the few management-API calls.

Why not httpx: the agent makes a handful of requests every few minutes, and httpx (with its
dependencies) costs ~20 MB of resident memory in a process that runs for months on volunteers'
hosts. A fresh connection per request also means nothing stale survives a network change.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urlsplit

from ntpmon.common.errors import NtpmonError


class TransportError(NtpmonError):
    """The request did not get an HTTP answer (DNS, connect, TLS, timeout, bad response)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status_code: int
    headers: Message
    content: bytes

    @property
    def media_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


class HttpClient:
    """One connection per request; ``source_address`` pins the local address (and family)."""

    def __init__(
        self,
        *,
        context: ssl.SSLContext,
        timeout: float,
        user_agent: str,
        source_address: str | None = None,
    ) -> None:
        self.context = context
        self.timeout = timeout
        self.user_agent = user_agent
        self.source_address = source_address

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise TransportError(f"unsupported URL {url!r}")
        source = (self.source_address, 0) if self.source_address else None
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname,
                parts.port,
                timeout=self.timeout,
                context=self.context,
                source_address=source,
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout, source_address=source
            )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return conn, target

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        json_bytes: bytes | None = None,
        form: dict[str, str] | None = None,
    ) -> HttpResponse:
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        conn, target = self._connection(url)
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        body: bytes | None = None
        if json_body is not None:  # ``json_bytes``: a document already encoded
            json_bytes = json.dumps(json_body, separators=(",", ":")).encode()
        if json_bytes is not None:
            body = json_bytes
            all_headers["Content-Type"] = "application/json"
        elif form:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, target, body=body, headers=all_headers)
            resp = conn.getresponse()
            content = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise TransportError(f"{method} {url}: {exc or type(exc).__name__}") from None
        finally:
            conn.close()
        return HttpResponse(resp.status, resp.headers, content)
