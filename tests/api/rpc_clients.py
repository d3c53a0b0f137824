"""Clients of the RPC port, one per wire protocol, behind one call: ``client.call(method, req)``.

Why: the listener must answer every protocol the same way (issue 14, api.md §3), so a test
names the protocol as a parameter and runs unchanged over

- ``grpc``: grpcio's stub, as ntpmon's agent in grpc mode;
- ``connect-h1``: Connect unary over HTTP/1.1 as the Go agent (connect-go) sends it, with httpx
  offering only the ``http/1.1`` ALPN;
- ``connect-noalpn``: the same with the stdlib's ``http.client`` offering no ALPN at all;
- ``connect-h2``: Connect over HTTP/2 (httpx, ``h2``); ``connect-json``: ``application/json``;
- ``grpcweb``: gRPC-Web framing over HTTP/1.1 (httpx), the status in the trailer frame;
- ``grpc-raw``: gRPC over HTTP/2 framed by hand on the ``h2`` library, for requests grpcio
  refuses to send (garbage ``grpc-timeout``, unknown ``grpc-encoding``).

Whatever the transport, a failure is one :class:`RpcCallError` carrying the ``grpc.StatusCode``
(a TLS or connection failure is ``UNAVAILABLE``, as grpcio reports it), the message and, for
the HTTP clients, the HTTP status, so tests can check connect-go's code→HTTP mapping. The
protocol details here are written from the Connect and gRPC specifications, not from the
server's modules, so the server is checked against an independent reading.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import ssl
import struct
import tempfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
import pytest
from api_testkit import UA
from google.protobuf import json_format
from google.protobuf.message import Message

from ntpmon.api.ca import IssuedCertificate
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc

SERVICE_PATH = "/monitor.v2.MonitorService/"
RESPONSES: dict[str, type[Message]] = {
    "GetConfig": pb.GetConfigResponse,
    "GetServers": pb.GetServersResponse,
    "SubmitResults": pb.SubmitResultsResponse,
}
PROTOCOLS = ("grpc", "connect-h1", "connect-noalpn", "connect-h2", "connect-json", "grpcweb")
EVERY_CASE = ("grpc", "connect-h1", "grpcweb")  # run with every case of a table
SOME_CASES = ("connect-noalpn", "connect-h2", "connect-json")  # with a representative subset
CONNECT = frozenset({"connect-h1", "connect-noalpn", "connect-h2", "connect-json"})
TIMEOUT = 15.0
FRAME = struct.Struct(">BI")
Headers = dict[str, str] | dict[str, str | bytes]  # bytes: raw values (latin-1 garbage)

# connect-go's connectCodeToHTTP (protocol_connect.go), written out on its own so that
# api/rpc/codes.py is checked against it rather than against itself.
CONNECT_HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
# What a Connect or gRPC client makes of an HTTP error without a status of its own
# (connect-go's httpToCode, gRPC's http-grpc-status-mapping.md).
HTTP_TO_CODE = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}
CODE_BY_CONNECT_NAME = {
    ("canceled" if c is grpc.StatusCode.CANCELLED else c.name.lower()): c for c in grpc.StatusCode
}
CODE_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


class RpcCallError(Exception):
    """An RPC that did not succeed, as every client reports it."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(f"{code.name}: {message} (HTTP {http_status})")
        self.code = code
        self.message = message
        self.http_status = http_status


def protocol_matrix(cases: Sequence[object], subset: Sequence[object]) -> list[Any]:
    """``(protocol, case)`` parameters: every case on :data:`EVERY_CASE`, ``subset`` on the
    others, so each protocol is covered without multiplying the run time by six."""
    return [pytest.param(p, c, id=f"{p}-{c}") for p in EVERY_CASE for c in cases] + [
        pytest.param(p, c, id=f"{p}-{c}") for p in SOME_CASES for c in subset
    ]


@dataclass(frozen=True)
class Peer:
    """Where the RPC port is and how a client presents itself to it."""

    port: int
    trust_pem: str
    cert: IssuedCertificate | None = None
    token: str | None = None
    user_agent: str = UA
    host: str = "127.0.0.1"


def client_tls(peer: Peer, alpn: list[str] | None) -> ssl.SSLContext:
    """A verifying client context trusting only ``peer.trust_pem``, with its certificate."""
    context = ssl.create_default_context(cadata=peer.trust_pem)
    if peer.cert is not None:
        with tempfile.TemporaryDirectory(prefix="ntpmon-client-") as tmp:
            cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
            cert.write_text(peer.cert.cert_pem)
            key.write_text(peer.cert.key_pem)
            context.load_cert_chain(cert, key)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


@dataclass
class HttpReply:
    """One HTTP exchange as the server answered it (header names lower-case)."""

    status: int
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)
    alpn: str | None = None


def _unavailable(exc: BaseException) -> RpcCallError:
    return RpcCallError(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")


class HttpxTransport:
    """httpx over TLS, HTTP/1.1 only (ALPN ``http/1.1``) or HTTP/2 (ALPN ``h2``)."""

    def __init__(self, peer: Peer, *, http2: bool) -> None:
        self._base = f"https://{peer.host}:{peer.port}"
        self._client = httpx.Client(
            verify=client_tls(peer, None), http1=not http2, http2=http2, timeout=TIMEOUT
        )

    def post(self, path: str, headers: Headers, body: bytes, http_method: str = "POST"):
        try:
            response = self._client.request(
                http_method, self._base + path, headers=headers, content=body
            )
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _unavailable(exc) from None
        stream = response.extensions["network_stream"]
        alpn = stream.get_extra_info("ssl_object").selected_alpn_protocol()
        return HttpReply(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
            alpn=alpn,
        )

    def close(self) -> None:
        self._client.close()


class StdlibTransport:
    """``http.client`` over TLS offering no ALPN at all (Go's HTTP/1.1-only transports may)."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        self._context = client_tls(peer, None)
        self._conn: http.client.HTTPSConnection | None = None

    def post(self, path: str, headers: Headers, body: bytes, http_method: str = "POST"):
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self._peer.host, self._peer.port, context=self._context, timeout=TIMEOUT
            )
        try:
            self._conn.request(http_method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise _unavailable(exc) from None
        sock = self._conn.sock
        alpn = sock.selected_alpn_protocol() if isinstance(sock, ssl.SSLSocket) else None
        return HttpReply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, data, alpn=alpn
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class H2Transport:
    """A bare HTTP/2 client on the ``h2`` state machine, one connection for all its requests
    (one at a time), trailers returned: httpx drops them, and gRPC's status lives there."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        self._context = client_tls(peer, ["h2"])
        self._tls: ssl.SSLSocket | None = None
        self._conn: h2.connection.H2Connection | None = None

    def post(self, path: str, headers: Headers, body: bytes, http_method: str = "POST"):
        peer = self._peer
        try:
            if self._tls is None or self._conn is None:
                raw = socket.create_connection((peer.host, peer.port), timeout=TIMEOUT)
                self._tls = self._context.wrap_socket(raw, server_hostname=peer.host)
                self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                self._conn.initiate_connection()
            return self._exchange(self._tls, self._conn, http_method, path, headers, body)
        except (ssl.SSLError, OSError, h2.exceptions.ProtocolError) as exc:
            self.close()
            raise _unavailable(exc) from None

    def _exchange(
        self,
        tls: ssl.SSLSocket,
        conn: h2.connection.H2Connection,
        method: str,
        path: str,
        headers: Headers,
        body: bytes,
    ) -> HttpReply:
        stream = conn.get_next_available_stream_id()
        authority = f"{self._peer.host}:{self._peer.port}"
        pseudo = [(":method", method), (":scheme", "https"), (":authority", authority)]
        conn.send_headers(stream, [*pseudo, (":path", path), *headers.items()])
        reply = HttpReply(0, {}, b"", alpn=tls.selected_alpn_protocol())
        pending, sent_all, ended, chunks = body, False, False, []
        while not ended:
            try:
                while not sent_all:
                    window = conn.local_flow_control_window(stream)
                    room = min(window, conn.max_outbound_frame_size)
                    if pending and room == 0:
                        break
                    conn.send_data(stream, pending[:room], end_stream=len(pending) <= room)
                    pending = pending[room:]
                    sent_all = not pending
            except h2.exceptions.StreamClosedError:  # answered before the body was all sent
                sent_all = True
            tls.sendall(conn.data_to_send())
            data = tls.recv(65536)
            if not data:
                raise ConnectionResetError("connection closed before the stream ended")
            for event in conn.receive_data(data):
                if getattr(event, "stream_id", stream) != stream:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    reply.headers = _header_dict(event.headers)
                    reply.status = int(reply.headers.pop(":status"))
                elif isinstance(event, h2.events.DataReceived):
                    chunks.append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.TrailersReceived):
                    reply.trailers = _header_dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionResetError(f"stream reset, error {event.error_code}")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise ConnectionResetError(f"GOAWAY, error {event.error_code}")
                ended = ended or isinstance(event, h2.events.StreamEnded)
        tls.sendall(conn.data_to_send())
        reply.body = b"".join(chunks)
        return reply

    def close(self) -> None:
        if self._tls is not None:
            self._tls.close()
        self._tls = self._conn = None


def _header_dict(headers: Any) -> dict[str, str]:
    return {_text(k).lower(): _text(v) for k, v in headers}


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def frame(payload: bytes, flags: int = 0) -> bytes:
    """One length-prefixed message of gRPC and gRPC-Web."""
    return FRAME.pack(flags, len(payload)) + payload


def _status_from(fields: dict[str, str], http_status: int) -> RpcCallError | None:
    """The failure a ``grpc-status``/``grpc-message`` pair means; None for OK."""
    number = int(fields["grpc-status"])
    if number == 0:
        return None
    message = urllib.parse.unquote(fields.get("grpc-message", ""))
    return RpcCallError(CODE_BY_NUMBER[number], message, http_status)


def _http_failure(reply: HttpReply) -> RpcCallError:
    code = HTTP_TO_CODE.get(reply.status, grpc.StatusCode.UNKNOWN)
    return RpcCallError(code, reply.body.decode(errors="replace").strip(), reply.status)


class ConnectWire:
    """Connect unary: the bare message; errors as JSON with an HTTP status."""

    def __init__(self, codec: str = "proto") -> None:
        self.codec = codec

    def headers(self, peer: Peer) -> dict[str, str]:
        return {
            "Content-Type": f"application/{self.codec}",
            "Connect-Protocol-Version": "1",
            "Connect-Timeout-Ms": str(int(TIMEOUT * 1000)),
            "User-Agent": peer.user_agent,
            "Accept-Encoding": "gzip",
        }

    def body(self, request: Message) -> bytes:
        if self.codec == "json":
            return json_format.MessageToJson(request).encode()
        return request.SerializeToString()

    def result(self, reply: HttpReply, response_class: type[Message]) -> Message:
        data = reply.body
        if reply.headers.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        if reply.status != 200:
            try:
                error = json.loads(data)
                code = CODE_BY_CONNECT_NAME[error["code"]]
            except (ValueError, KeyError, TypeError):
                raise _http_failure(reply) from None
            raise RpcCallError(code, error.get("message", ""), reply.status)
        expected = f"application/{self.codec}"
        assert reply.headers["content-type"].split(";")[0] == expected, reply.headers
        if self.codec == "json":
            return json_format.Parse(data, response_class())
        return response_class.FromString(data)


class FramedWire:
    """gRPC (HTTP/2, status in trailers) and gRPC-Web (status in a trailer frame)."""

    def __init__(self, web: bool) -> None:
        self.web = web

    def headers(self, peer: Peer) -> dict[str, str]:
        headers = {
            "content-type": "application/grpc-web+proto" if self.web else "application/grpc",
            "user-agent": peer.user_agent,
            "grpc-timeout": f"{int(TIMEOUT)}S",
            "grpc-accept-encoding": "gzip",
        }
        headers.update({"x-grpc-web": "1"} if self.web else {"te": "trailers"})
        return headers

    def body(self, request: Message) -> bytes:
        return frame(request.SerializeToString())

    def result(self, reply: HttpReply, response_class: type[Message]) -> Message:
        if reply.status != 200:
            raise _http_failure(reply)
        messages, trailers = _unframe(reply.body)
        fields = {**reply.headers, **reply.trailers, **trailers}
        if "grpc-status" not in fields:
            raise RpcCallError(grpc.StatusCode.INTERNAL, "no grpc-status", reply.status)
        failure = _status_from(fields, reply.status)
        if failure is not None:
            raise failure
        assert len(messages) == 1, messages
        return response_class.FromString(messages[0])


def _unframe(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """The messages of a framed body and the fields of its gRPC-Web trailer frame."""
    messages: list[bytes] = []
    trailers: dict[str, str] = {}
    offset = 0
    while offset < len(body):
        flags, length = FRAME.unpack_from(body, offset)
        payload = body[offset + FRAME.size : offset + FRAME.size + length]
        assert len(payload) == length, "truncated frame"
        offset += FRAME.size + length
        if flags & 0x80:
            for line in payload.decode("latin-1").split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    trailers[name.strip().lower()] = value.strip()
        else:
            messages.append(gzip.decompress(payload) if flags & 1 else payload)
    return messages, trailers


Transport = HttpxTransport | StdlibTransport | H2Transport


class HttpRpcClient:
    """One protocol over one HTTP transport; :meth:`post` sends arbitrary bytes for bad input."""

    def __init__(self, peer: Peer, transport: Transport, wire: ConnectWire | FramedWire) -> None:
        self.peer = peer
        self.transport = transport
        self.wire = wire
        self.last_alpn: str | None = None

    @property
    def framed(self) -> bool:
        """Whether requests are length-prefixed messages (gRPC, gRPC-Web) or bare (Connect)."""
        return isinstance(self.wire, FramedWire)

    def headers(self) -> dict[str, str]:
        """What this client sends with every call (credentials included)."""
        headers = self.wire.headers(self.peer)
        if self.peer.token:
            headers["Authorization"] = f"Bearer {self.peer.token}"
        return headers

    def post(self, method: str, body: bytes, headers: Headers | None = None, **kw: Any):
        """A raw exchange on ``/monitor.v2.MonitorService/<method>`` (``method`` may be a path)."""
        path = method if method.startswith("/") else SERVICE_PATH + method
        reply = self.transport.post(
            path, headers if headers is not None else self.headers(), body, **kw
        )
        self.last_alpn = reply.alpn
        return reply

    def result(self, reply: HttpReply, method: str) -> Message:
        """The response message of ``reply``; raises :class:`RpcCallError`."""
        return self.wire.result(reply, RESPONSES[method])

    def call(self, method: str, request: Message) -> Message:
        return self.result(self.post(method, self.wire.body(request)), method)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> HttpRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GrpcioClient:
    """grpcio's generated stub, as :meth:`RunningApi.stub` sets it up."""

    def __init__(self, peer: Peer, compression: grpc.Compression | None = None) -> None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=peer.trust_pem.encode(),
            private_key=peer.cert.key_pem.encode() if peer.cert else None,
            certificate_chain=peer.cert.cert_pem.encode() if peer.cert else None,
        )
        self.channel = grpc.secure_channel(
            f"{peer.host}:{peer.port}",
            creds,
            options=[("grpc.primary_user_agent", peer.user_agent)],
            compression=compression,
        )
        self.stub = pb_grpc.MonitorServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {peer.token}")] if peer.token else None

    def call(self, method: str, request: Message) -> Message:
        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            raise RpcCallError(exc.code(), exc.details() or "") from None

    def call_raw(self, method: str, body: bytes) -> Message:
        """Send ``body`` as the serialised request, unchecked (malformed protobuf)."""
        call = self.channel.unary_unary(
            SERVICE_PATH + method,
            request_serializer=lambda raw: raw,
            response_deserializer=RESPONSES[method].FromString,
        )
        try:
            return call(body, metadata=self.metadata, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            raise RpcCallError(exc.code(), exc.details() or "") from None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GrpcioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RpcClient = GrpcioClient | HttpRpcClient


def rpc_client(protocol: str, peer: Peer) -> RpcClient:
    """A client of ``protocol`` (see the module docstring) for ``peer``."""
    if protocol == "grpc":
        return GrpcioClient(peer)
    factories = {
        "connect-h1": lambda: (HttpxTransport(peer, http2=False), ConnectWire()),
        "connect-noalpn": lambda: (StdlibTransport(peer), ConnectWire()),
        "connect-h2": lambda: (HttpxTransport(peer, http2=True), ConnectWire()),
        "connect-json": lambda: (HttpxTransport(peer, http2=False), ConnectWire("json")),
        "grpcweb": lambda: (HttpxTransport(peer, http2=False), FramedWire(web=True)),
        "grpc-raw": lambda: (H2Transport(peer), FramedWire(web=False)),
    }
    transport, wire = factories[protocol]()
    return HttpRpcClient(peer, transport, wire)


EXPECTED_ALPN = {
    "connect-h1": "http/1.1",
    "connect-noalpn": None,
    "connect-h2": "h2",
    "connect-json": "http/1.1",
    "grpcweb": "http/1.1",
    "grpc-raw": "h2",
}


def check_failure(protocol: str, failure: RpcCallError, code: grpc.StatusCode) -> None:
    """The code, and for Connect the HTTP status connect-go sends it with."""
    assert failure.code == code, failure
    handshake_failure = code is grpc.StatusCode.UNAVAILABLE and failure.http_status is None
    if protocol in CONNECT and not handshake_failure:
        assert failure.http_status == CONNECT_HTTP_STATUS[code], failure
