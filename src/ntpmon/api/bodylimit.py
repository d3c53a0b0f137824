"""Bounded request bodies for the Starlette listeners (management, pages, internal API, metrics).

Why a middleware and not a check in each handler: a handler that trusts ``Content-Length``
misses ``Transfer-Encoding: chunked`` bodies, and one that never reads the body lets the
server keep reading whatever the client streams. :class:`BodyLimit` reads every request body
up to its limit *before* the application runs, so each endpoint of an application answers the
same ``413`` past the limit and no handler ever holds more than ``limit`` bytes.

Past the limit the rest is read and dropped up to :data:`DRAIN_LIMIT` (so that an ordinary
client, which sends its whole body before reading the answer, sees the 413 instead of a reset
connection), then the answer goes out with ``Connection: close`` and nothing more is read.
The RPC port bounds its bodies in :mod:`ntpmon.api.rpc.app` (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_LIMIT = 1 << 20  # bytes read and dropped past the limit before the 413 is sent
MANAGEMENT_BODY_LIMIT = 8192  # the registration form and the token request are tiny
READ_ONLY_BODY_LIMIT = 1024  # health, status pages, metrics: GET endpoints, no body expected
INTERNAL_BODY_LIMIT = 4096  # the internal API's ad-hoc check takes one form field


class _ClientGoneError(Exception):
    """The client disconnected while its body was being read: there is nobody to answer."""


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (the HTTP engine has checked its syntax), or None."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _read_up_to(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """(body, complete): the body if it fits in ``limit``, else what was read and False."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of the body, at most ``budget`` bytes of it."""
    while budget >= 0:
        message = await receive()
        budget -= len(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


async def too_large(send: Send, limit: int) -> None:
    """The 413 answer; the connection closes after it, the rest of the body unread."""
    text = f"body larger than {limit} bytes\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})


class BodyLimit:
    """Wraps an ASGI application: bodies over ``limit`` bytes are answered 413 before it runs.

    ``paths`` raises the limit for single exact paths (the management API's traceroute upload
    carries up to 64 KiB while its other bodies are tiny), so one endpoint's need does not widen
    what every other endpoint of the application must read.
    """

    def __init__(
        self,
        app: AsgiApp,
        limit: int,
        drain_limit: int = DRAIN_LIMIT,
        paths: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.drain_limit = drain_limit
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.limit)
        declared = declared_length(scope)
        try:
            if declared is not None and declared > limit:
                if declared <= self.drain_limit:
                    await _drain(receive, self.drain_limit)
                await too_large(send, limit)
                return
            body, complete = await _read_up_to(receive, limit)
            if not complete:
                await _drain(receive, self.drain_limit)
                await too_large(send, limit)
                return
        except _ClientGoneError:
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the body already read, then defers to the server's."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
