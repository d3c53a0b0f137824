"""How a Connect unary error answer becomes an :class:`RPCError` (Connect protocol, Error end).

A connect-go server answers errors with a non-200 status and a JSON body
``{"code": "permission_denied", "message": "..."}``. Anything in front of it (the auth layer's
plain-text 401, a proxy's 502 page) answers without one; then the code comes from the HTTP
status by the Connect spec's table. Kept apart from the client so it is a pure function.
"""

from __future__ import annotations

import json

from ntpmon.agent.transport.base import CODES, UNAVAILABLE, UNKNOWN, RPCError

HTTP_TO_CODE = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}
"""The Connect spec's HTTP-to-code table; every other status is ``unknown``."""

FLUSH_STATUSES = frozenset({401, 403, 495, 496, 497})
"""Statuses after which pooled connections are dropped (agent.md §9.2): the server may have
refused this connection's certificate, so the next call must handshake again."""

MAX_MESSAGE = 300


def error_from_response(status: int, reason: str, content_type: str, body: bytes) -> RPCError:
    """The error for a non-200 answer; the JSON code wins when it is a Connect code name."""
    code = HTTP_TO_CODE.get(status, UNKNOWN)
    message = ""
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json":
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if doc.get("code") in CODES:
                code = doc["code"]
            if isinstance(doc.get("message"), str):
                message = doc["message"]
    else:
        message = body.decode("utf-8", errors="replace").strip()[:MAX_MESSAGE]
    return RPCError(
        message or f"HTTP {status} {reason}".strip(), code, flush=status in FLUSH_STATUSES
    )
