"""The three wire protocols of one unary RPC, as pure functions over headers and bytes.

A request is classified by its content type (as connect-go does): ``application/proto`` and
``application/json`` are Connect unary, ``application/grpc[+proto|+json]`` gRPC,
``application/grpc-web[+proto|+json]`` gRPC-Web. gRPC and gRPC-Web carry exactly one
length-prefixed message; Connect the bare message. Every protocol may gzip the request.
Responses are never compressed (always allowed, and the messages are small).
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from ntpmon.api.rpc.codes import connect_name, grpc_number, http_status
from ntpmon.api.rpcerrors import RpcError

FRAME_HEADER = struct.Struct(">BI")
FLAG_COMPRESSED = 0x01
FLAG_TRAILERS = 0x80
ACCEPT_ENCODING = "gzip"
_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

Headers = list[tuple[bytes, bytes]]


class Protocol(enum.Enum):
    CONNECT = "connect"
    GRPC = "grpc"
    GRPC_WEB = "grpcweb"


@dataclass(frozen=True, slots=True)
class WireFormat:
    """How one request is spoken: protocol, message codec and request compression."""

    protocol: Protocol
    codec: str  # "proto" or "json"
    encoding: str  # "identity" or "gzip"

    @property
    def framed(self) -> bool:
        return self.protocol is not Protocol.CONNECT

    def content_type(self) -> bytes:
        if self.protocol is Protocol.CONNECT:
            return b"application/" + self.codec.encode()
        base = b"application/grpc" if self.protocol is Protocol.GRPC else b"application/grpc-web"
        return base + b"+" + self.codec.encode()


class UnsupportedMediaTypeError(Exception):
    """Not one of the RPC content types: answered 415 like connect-go, not as an RPC error."""


def classify(content_type: str) -> tuple[Protocol, str]:
    """(protocol, codec) of a ``Content-Type``; raises :class:`UnsupportedMediaTypeError`."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/proto", "application/json"):
        return Protocol.CONNECT, media.removeprefix("application/")
    for prefix, protocol in (
        ("application/grpc-web", Protocol.GRPC_WEB),
        ("application/grpc", Protocol.GRPC),
    ):
        if media == prefix or media.startswith(prefix + "+"):
            codec = media[len(prefix) + 1 :] or "proto"
            if codec in ("proto", "json"):
                return protocol, codec
            break
    raise UnsupportedMediaTypeError(content_type)


def request_encoding(protocol: Protocol, headers: dict[str, str]) -> str:
    """The request's compression: ``Content-Encoding`` (Connect) or ``grpc-encoding``."""
    name = "content-encoding" if protocol is Protocol.CONNECT else "grpc-encoding"
    value = headers.get(name, "identity").strip().lower() or "identity"
    if value not in ("identity", "gzip"):
        raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"unknown compression {value!r}")
    return value


def timeout_seconds(protocol: Protocol, headers: dict[str, str]) -> float | None:
    """The client's deadline (``Connect-Timeout-Ms`` or ``grpc-timeout``); None without one."""
    if protocol is Protocol.CONNECT:
        value = headers.get("connect-timeout-ms")
        if value is None:
            return None
        if not value.isdigit() or len(value) > 10:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid Connect-Timeout-Ms")
        return int(value) / 1000
    value = headers.get("grpc-timeout")
    if value is None:
        return None
    amount, unit = value[:-1], value[-1:]
    if not amount.isdigit() or len(amount) > 8 or unit not in _GRPC_TIMEOUT_UNITS:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid grpc-timeout")
    return int(amount) * _GRPC_TIMEOUT_UNITS[unit]


def _gunzip(data: bytes, limit: int) -> bytes:
    """Inflate at most ``limit`` bytes, so a small bomb cannot take the memory."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid gzip data") from None
    if len(out) > limit:
        raise too_large(limit)
    return out


def too_large(limit: int) -> RpcError:
    return RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"message larger than {limit} bytes")


def message_bytes(wire: WireFormat, body: bytes, limit: int) -> bytes:
    """The serialised request message in ``body`` (unframed, inflated)."""
    if not wire.framed:
        return _gunzip(body, limit) if wire.encoding == "gzip" else body
    if len(body) < FRAME_HEADER.size:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "unary request has no message")
    flags, length = FRAME_HEADER.unpack_from(body)
    payload = body[FRAME_HEADER.size :]
    if length != len(payload):
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "unary request must be one whole message")
    if length > limit:
        raise too_large(limit)
    if flags & FLAG_COMPRESSED:
        if wire.encoding == "identity":
            raise RpcError(grpc.StatusCode.INTERNAL, "compressed flag set without grpc-encoding")
        return _gunzip(payload, limit)
    return payload


def decode(wire: WireFormat, data: bytes, message_class: type[Message]) -> Message:
    """Parse the request message; a malformed one is INVALID_ARGUMENT, never a traceback."""
    try:
        if wire.codec == "json":
            return json_format.Parse(data or b"{}", message_class(), ignore_unknown_fields=True)
        return message_class.FromString(data)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT, f"unmarshal into {message_class.__name__}: {reason}"
        ) from None


def encode(wire: WireFormat, message: Message) -> bytes:
    if wire.codec == "json":
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def frame(payload: bytes, flags: int = 0) -> bytes:
    return FRAME_HEADER.pack(flags, len(payload)) + payload


def grpc_message_escape(text: str) -> bytes:
    """``grpc-message`` percent-encoding: printable ASCII but ``%`` stays, the rest is %XX."""
    out = bytearray()
    for byte in text.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def status_fields(code: grpc.StatusCode, message: str) -> Headers:
    fields = [(b"grpc-status", str(grpc_number(code)).encode())]
    if message:
        fields.append((b"grpc-message", grpc_message_escape(message)))
    return fields


@dataclass(frozen=True, slots=True)
class WireResponse:
    """What to send: status, headers, body and (gRPC over HTTP/2 only) trailers."""

    status: int
    headers: Headers
    body: bytes = b""
    trailers: Headers | None = None


def _base_headers(wire: WireFormat) -> Headers:
    headers = [(b"content-type", wire.content_type())]
    if wire.framed:
        headers.append((b"grpc-accept-encoding", ACCEPT_ENCODING.encode()))
    else:
        headers.append((b"accept-encoding", ACCEPT_ENCODING.encode()))
    return headers


def success(wire: WireFormat, message: Message) -> WireResponse:
    payload = encode(wire, message)
    headers = _base_headers(wire)
    if wire.protocol is Protocol.CONNECT:
        return WireResponse(200, headers, payload)
    ok = status_fields(grpc.StatusCode.OK, "")
    if wire.protocol is Protocol.GRPC:
        return WireResponse(200, headers, frame(payload), trailers=ok)
    return WireResponse(200, headers, frame(payload) + frame(_trailer_block(ok), FLAG_TRAILERS))


def _trailer_block(fields: Headers) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in fields)


def failure(wire: WireFormat | None, code: grpc.StatusCode, message: str) -> WireResponse:
    """The error answer: Connect's JSON with its HTTP status, or a gRPC status.

    gRPC errors are headers, no message and the status in the trailers (an ASGI server always
    ends the body with a DATA frame, so "trailers-only" in one HEADERS frame is not possible);
    gRPC-Web puts the status in a trailer frame of the body, which every gRPC-Web client reads.
    """
    if wire is None or wire.protocol is Protocol.CONNECT:
        body: dict[str, Any] = {"code": connect_name(code)}
        if message:
            body["message"] = message
        return WireResponse(
            http_status(code),
            [(b"content-type", b"application/json")],
            json.dumps(body, separators=(",", ":")).encode(),
        )
    fields = status_fields(code, message)
    if wire.protocol is Protocol.GRPC:
        return WireResponse(200, _base_headers(wire), trailers=fields)
    return WireResponse(200, _base_headers(wire), frame(_trailer_block(fields), FLAG_TRAILERS))
