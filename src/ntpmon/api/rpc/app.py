"""The ASGI application of the RPC listener: HTTP in, one :class:`Dispatcher` call, HTTP out.

The listener puts the verified client certificate (DER) of the connection in
``scope["state"]["peer_cert"]``. Bodies are read up to the message limit and no further, so
an oversized or endless upload costs bounded memory. The service work runs on the priority
scheduler's threads (SubmitResults first), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import grpc

from ntpmon.api.admission import PriorityScheduler
from ntpmon.api.rpc import protocols as wire
from ntpmon.api.rpc.badrequests import MALFORMED, BadRequestLog
from ntpmon.api.rpc.dispatch import PRIORITIES, SERVICE, CallMeta, Dispatcher
from ntpmon.api.rpcerrors import RpcError

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20
# An oversized request is read on (and dropped) up to this much, so that the client, still
# sending, gets the RESOURCE_EXHAUSTED answer instead of a reset stream; past it, the reset.
DRAIN_LIMIT = 8 << 20
PATH_PREFIX = f"/{SERVICE}/"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyTooLargeError(Exception):
    """The request body passed the limit; the rest is not read."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; past ``limit`` the rest is dropped (:func:`discard_body`) and
    :class:`BodyTooLargeError` raised (memory stays bounded either way)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            if more and not await discard_body(receive, read=size):
                raise ConnectionResetError("client went away")
            raise BodyTooLargeError
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


async def discard_body(receive: Receive, read: int = 0) -> bool:
    """Read what is left of the request (up to ``DRAIN_LIMIT`` in all, ``read`` of it already
    taken) and drop it, before an answer that did not need the body: hypercorn fails a whole
    HTTP/2 connection (KeyError on the closed stream) when DATA arrives for a stream it already
    answered, which would take the client's other calls on that connection with it. False when
    the client went away meanwhile."""
    size = read
    while size <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return True


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _peer(scope: Scope) -> str:
    """The client's address as gRPC writes it (``ipv4:192.0.2.1:5000``, ``ipv6:[::1]:5000``)."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


async def _send(send: Send, response: wire.WireResponse, trailers_allowed: bool) -> None:
    has_trailers = response.trailers is not None
    if has_trailers and not trailers_allowed:
        # gRPC needs HTTP/2 trailers; without them the status goes into the headers
        response = wire.WireResponse(
            response.status, response.headers + (response.trailers or []), response.body
        )
        has_trailers = False
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": response.headers,
            "trailers": has_trailers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})
    if has_trailers:
        await send({"type": "http.response.trailers", "headers": response.trailers})


async def _plain(send: Send, status: int, text: str, extra: wire.Headers | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


class RpcApp:
    """``POST /monitor.v2.MonitorService/<Method>`` in any of the three protocols."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        scheduler: PriorityScheduler,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        bad_requests: BadRequestLog | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.scheduler = scheduler
        self.max_message_bytes = max_message_bytes
        self.bad_requests = bad_requests or BadRequestLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        method = scope["path"].removeprefix(PATH_PREFIX)
        try:
            protocol, codec = wire.classify(headers.get("content-type", ""))
        except wire.UnsupportedMediaTypeError:
            protocol, codec = None, ""
        # connect-go's order: its mux answers unknown paths 404 (gRPC clients get
        # UNIMPLEMENTED below instead), then the handler 405 for any method but POST, then 415
        if method not in self.dispatcher.methods and protocol in (None, wire.Protocol.CONNECT):
            await self._refuse(scope, receive, send, 404, "404 page not found\n")
            return
        if scope["method"] != "POST":
            allow = [(b"allow", b"POST")]
            await self._refuse(scope, receive, send, 405, "method not allowed\n", allow)
            return
        if protocol is None:
            accept = b"application/proto, application/json, application/grpc, application/grpc-web"
            await self._refuse(
                scope, receive, send, 415, "unsupported content type\n", [(b"accept-post", accept)]
            )
            return
        trailers_allowed = "http.response.trailers" in scope.get("extensions", {})
        started = time.monotonic()
        wire_format = wire.WireFormat(protocol, codec, "identity")
        body_pending = True
        try:
            wire_format = wire.WireFormat(protocol, codec, wire.request_encoding(protocol, headers))
            if method not in self.dispatcher.methods:
                raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"{scope['path']} is not implemented")
            timeout = wire.timeout_seconds(protocol, headers)
            limit = self.max_message_bytes + (wire.FRAME_HEADER.size if wire_format.framed else 0)
            body_pending = False
            try:
                body = await read_body(receive, limit)
            except BodyTooLargeError:
                raise wire.too_large(self.max_message_bytes) from None
            data = wire.message_bytes(wire_format, body, self.max_message_bytes)
            meta = CallMeta(
                method=method,
                headers=headers,
                peer=_peer(scope),
                peer_cert=(scope.get("state") or {}).get("peer_cert"),
                protocol=protocol.value,
                deadline=None if timeout is None else started + timeout,
            )
            fmt = wire_format
            future = self.scheduler.submit(
                PRIORITIES[method],
                method,
                self.dispatcher.run,
                meta,
                lambda cls: wire.decode(fmt, data, cls),
            )
            message = await asyncio.wrap_future(future)
            response = wire.success(wire_format, message)
        except RpcError as exc:
            if exc.code in MALFORMED:
                self.bad_requests.report(_peer(scope), scope["path"], exc.message)
            if body_pending:  # refused on its headers alone
                await discard_body(receive)
            response = wire.failure(wire_format, exc.code, exc.message)
        except ConnectionResetError:
            return
        await _send(send, response, trailers_allowed)

    async def _refuse(  # noqa: PLR0917 - the ASGI triple and the answer
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        text: str,
        extra: wire.Headers | None = None,
    ) -> None:
        """An HTTP answer to what is no RPC: logged (rate-limited per peer), the body dropped."""
        self.bad_requests.report(_peer(scope), scope["path"], text.strip())
        await discard_body(receive)
        await _plain(send, status, text, extra)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
