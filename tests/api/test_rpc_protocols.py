"""Table-driven checks of the RPC port's pure wire functions (api/rpc/protocols.py, codes.py)
against the Connect and gRPC specifications, as the test clients in rpc_clients read them."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from rpc_clients import CODE_BY_CONNECT_NAME, CONNECT_HTTP_STATUS, HttpReply, _unframe
from rpc_clients import FramedWire as ClientFramedWire

from ntpmon.api.rpc import protocols as wire
from ntpmon.api.rpc.codes import connect_name, grpc_number, http_status
from ntpmon.api.rpcerrors import RpcError
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

Code = grpc.StatusCode
P = wire.Protocol
CONNECT_PROTO = wire.WireFormat(P.CONNECT, "proto", "identity")
CONNECT_GZIP = wire.WireFormat(P.CONNECT, "proto", "gzip")
GRPC = wire.WireFormat(P.GRPC, "proto", "identity")
GRPC_GZIP = wire.WireFormat(P.GRPC, "proto", "gzip")
MSG = pb.GetConfigRequest(mon_id="192.0.2.10").SerializeToString()


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/proto", (P.CONNECT, "proto")),
        ("application/json", (P.CONNECT, "json")),
        ("Application/JSON; charset=utf-8", (P.CONNECT, "json")),
        ("application/grpc", (P.GRPC, "proto")),
        ("application/grpc+proto", (P.GRPC, "proto")),
        ("application/grpc+json", (P.GRPC, "json")),
        ("application/grpc-web", (P.GRPC_WEB, "proto")),
        ("application/grpc-web+proto", (P.GRPC_WEB, "proto")),
        ("application/grpc-web+json", (P.GRPC_WEB, "json")),
        ("application/grpc+thrift", None),
        ("application/grpc-web-text", None),
        ("application/grpcx", None),
        ("application/protobuf", None),
        ("text/plain", None),
        ("", None),
    ],
)
def test_classify(content_type, expected):
    if expected is None:
        with pytest.raises(wire.UnsupportedMediaTypeError):
            wire.classify(content_type)
    else:
        assert wire.classify(content_type) == expected


@pytest.mark.parametrize(
    ("protocol", "headers", "expected"),
    [
        (P.CONNECT, {}, None),
        (P.CONNECT, {"connect-timeout-ms": "1500"}, 1.5),
        (P.CONNECT, {"connect-timeout-ms": "0"}, 0.0),
        (P.CONNECT, {"connect-timeout-ms": "9999999999"}, 9999999.999),
        (P.CONNECT, {"connect-timeout-ms": "10000000000"}, "Connect-Timeout-Ms"),  # 11 digits
        (P.CONNECT, {"connect-timeout-ms": "-1"}, "Connect-Timeout-Ms"),
        (P.CONNECT, {"connect-timeout-ms": "1.5"}, "Connect-Timeout-Ms"),
        (P.CONNECT, {"connect-timeout-ms": ""}, "Connect-Timeout-Ms"),
        (P.CONNECT, {"connect-timeout-ms": "\u00b2"}, "Connect-Timeout-Ms"),  # byte 0xB2: '²'
        (P.CONNECT, {"connect-timeout-ms": "\u0661\u0662"}, "Connect-Timeout-Ms"),
        (P.CONNECT, {"grpc-timeout": "1S"}, None),  # the other protocol's header is ignored
        (P.GRPC, {}, None),
        (P.GRPC, {"grpc-timeout": "2H"}, 7200.0),
        (P.GRPC, {"grpc-timeout": "3M"}, 180.0),
        (P.GRPC, {"grpc-timeout": "15S"}, 15.0),
        (P.GRPC, {"grpc-timeout": "250m"}, 0.25),
        (P.GRPC, {"grpc-timeout": "500u"}, 0.0005),
        (P.GRPC, {"grpc-timeout": "99999999n"}, 0.099999999),
        (P.GRPC, {"grpc-timeout": "123456789S"}, "grpc-timeout"),  # 9 digits
        (P.GRPC, {"grpc-timeout": "10"}, "grpc-timeout"),
        (P.GRPC, {"grpc-timeout": "S"}, "grpc-timeout"),
        (P.GRPC, {"grpc-timeout": "1s"}, "grpc-timeout"),
        (P.GRPC, {"grpc-timeout": "-1S"}, "grpc-timeout"),
        (P.GRPC_WEB, {"grpc-timeout": "1x"}, "grpc-timeout"),
        (P.GRPC, {"grpc-timeout": "\u00b9S"}, "grpc-timeout"),  # byte 0xB9: '¹' isdigit()
        (P.GRPC_WEB, {"grpc-timeout": "7S"}, 7.0),
    ],
)
def test_timeout_seconds(protocol, headers, expected):
    if isinstance(expected, str):
        with pytest.raises(RpcError) as err:
            wire.timeout_seconds(protocol, headers)
        assert err.value.code == Code.INVALID_ARGUMENT
        assert expected in err.value.message
    else:
        assert wire.timeout_seconds(protocol, headers) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("protocol", "headers", "expected"),
    [
        (P.CONNECT, {}, "identity"),
        (P.CONNECT, {"content-encoding": "gzip"}, "gzip"),
        (P.CONNECT, {"content-encoding": " GZIP "}, "gzip"),
        (P.CONNECT, {"content-encoding": ""}, "identity"),
        (P.CONNECT, {"grpc-encoding": "gzip"}, "identity"),
        (P.CONNECT, {"content-encoding": "br"}, None),
        (P.GRPC, {"grpc-encoding": "gzip"}, "gzip"),
        (P.GRPC, {"grpc-encoding": "identity"}, "identity"),
        (P.GRPC, {"content-encoding": "gzip"}, "identity"),
        (P.GRPC, {"grpc-encoding": "snappy"}, None),
        (P.GRPC_WEB, {"grpc-encoding": "deflate"}, None),
    ],
)
def test_request_encoding(protocol, headers, expected):
    if expected is None:
        with pytest.raises(RpcError) as err:
            wire.request_encoding(protocol, headers)
        assert err.value.code == Code.UNIMPLEMENTED
    else:
        assert wire.request_encoding(protocol, headers) == expected


LIMIT = 1024
MESSAGE_CASES = {
    "connect bare": (CONNECT_PROTO, MSG, MSG),
    "connect empty": (CONNECT_PROTO, b"", b""),
    "connect gzip": (CONNECT_GZIP, gzip.compress(MSG), MSG),
    "connect gzip at the limit": (CONNECT_GZIP, gzip.compress(b"a" * LIMIT), b"a" * LIMIT),
    "connect gzip one past the limit": (
        CONNECT_GZIP,
        gzip.compress(b"a" * (LIMIT + 1)),
        Code.RESOURCE_EXHAUSTED,
    ),
    "connect gzip bomb": (
        CONNECT_GZIP,
        gzip.compress(b"\0" * (1 << 24)),
        Code.RESOURCE_EXHAUSTED,
    ),
    "connect truncated gzip": (CONNECT_GZIP, gzip.compress(MSG)[:-4], Code.INVALID_ARGUMENT),
    "connect not gzip": (CONNECT_GZIP, MSG, Code.INVALID_ARGUMENT),
    "grpc frame": (GRPC, wire.frame(MSG), MSG),
    "grpc empty message": (GRPC, wire.frame(b""), b""),
    "grpc compressed frame": (GRPC_GZIP, wire.frame(gzip.compress(MSG), 1), MSG),
    "grpc uncompressed frame with grpc-encoding": (GRPC_GZIP, wire.frame(MSG), MSG),
    "grpc compressed flag without encoding": (GRPC, wire.frame(MSG, 1), Code.INTERNAL),
    "grpc compressed bomb": (
        GRPC_GZIP,
        wire.frame(gzip.compress(b"\0" * (1 << 24)), 1),
        Code.RESOURCE_EXHAUSTED,
    ),
    "grpc truncated gzip": (
        GRPC_GZIP,
        wire.frame(gzip.compress(MSG)[:-1], 1),
        Code.INVALID_ARGUMENT,
    ),
    "grpc frame over the limit": (GRPC, wire.frame(b"a" * (LIMIT + 1)), Code.RESOURCE_EXHAUSTED),
    "grpc no body": (GRPC, b"", Code.INVALID_ARGUMENT),
    "grpc short header": (GRPC, b"\0\0\0", Code.INVALID_ARGUMENT),
    "grpc length too long": (GRPC, wire.frame(MSG)[:-1], Code.INVALID_ARGUMENT),
    "grpc two frames": (GRPC, wire.frame(MSG) * 2, Code.INVALID_ARGUMENT),
}


@pytest.mark.parametrize("case", list(MESSAGE_CASES))
def test_message_bytes(case):
    fmt, body, expected = MESSAGE_CASES[case]
    if isinstance(expected, Code):
        with pytest.raises(RpcError) as err:
            wire.message_bytes(fmt, body, LIMIT)
        assert err.value.code == expected
    else:
        assert wire.message_bytes(fmt, body, LIMIT) == expected


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("", b""),
        ("no such monitor", b"no such monitor"),
        ("100% sure", b"100%25 sure"),
        ("line\nbreak\ttab", b"line%0Abreak%09tab"),
        ("caf\u00e9", b"caf%C3%A9"),
        ("\u2603 ~", b"%E2%98%83 ~"),
        ("\x7f", b"%7F"),
    ],
)
def test_grpc_message_escape(text, escaped):
    assert wire.grpc_message_escape(text) == escaped
    from urllib.parse import unquote

    assert unquote(escaped.decode()) == text


@pytest.mark.parametrize("code", [c for c in Code if c is not Code.OK])
def test_connect_error_json_and_http_status(code):
    """Connect: compact JSON, connect-go's names and HTTP statuses, no message key when empty."""
    for message, body in (("boom \u2603", {"message": "boom \u2603"}), ("", {})):
        answer = wire.failure(CONNECT_PROTO, code, message)
        assert answer.status == CONNECT_HTTP_STATUS[code] == http_status(code)
        assert answer.headers == [(b"content-type", b"application/json")]
        assert answer.trailers is None
        assert json.loads(answer.body) == {"code": connect_name(code), **body}
        assert CODE_BY_CONNECT_NAME[connect_name(code)] is code
        assert b" " not in answer.body.replace(b"boom ", b"")


@pytest.mark.parametrize("code", [c for c in Code if c is not Code.OK])
@pytest.mark.parametrize("protocol", [P.GRPC, P.GRPC_WEB])
def test_framed_errors_carry_the_status(protocol, code):
    fmt = wire.WireFormat(protocol, "proto", "identity")
    answer = wire.failure(fmt, code, "bad 100%\n")
    reply = HttpReply(
        answer.status,
        {k.decode(): v.decode() for k, v in answer.headers},
        answer.body,
        {k.decode(): v.decode() for k, v in answer.trailers or []},
    )
    assert answer.status == 200
    assert (answer.trailers is not None) is (protocol is P.GRPC)
    with pytest.raises(Exception) as err:
        ClientFramedWire(web=protocol is P.GRPC_WEB).result(reply, pb.GetConfigResponse)
    assert err.value.code is code
    assert err.value.message == "bad 100%\n"
    assert grpc_number(code) == code.value[0]


@pytest.mark.parametrize("protocol", [P.CONNECT, P.GRPC, P.GRPC_WEB])
@pytest.mark.parametrize("codec", ["proto", "json"])
def test_success_round_trips(protocol, codec):
    fmt = wire.WireFormat(protocol, codec, "identity")
    message = pb.GetConfigResponse(samples=4, ip_bytes=b"\xc0\0\2\n")
    answer = wire.success(fmt, message)
    assert answer.status == 200
    assert dict(answer.headers)[b"content-type"] == fmt.content_type()
    if protocol is P.CONNECT:
        assert wire.decode(fmt, answer.body, pb.GetConfigResponse) == message
        return
    messages, trailers = _unframe(answer.body)
    assert len(messages) == 1
    assert wire.decode(fmt, messages[0], pb.GetConfigResponse) == message
    fields = (
        trailers if protocol is P.GRPC_WEB else {k.decode(): v.decode() for k, v in answer.trailers}
    )
    assert fields == {"grpc-status": "0"}


@pytest.mark.parametrize(
    ("codec", "data", "reason"),
    [
        ("proto", b"\x0a\xff", "GetConfigRequest"),
        ("proto", b"\xff", "GetConfigRequest"),
        ("json", b"{", "GetConfigRequest"),
        ("json", b'{"monId": 5}', "GetConfigRequest"),
        ("json", b"\xff\xfe", "GetConfigRequest"),
        ("json", b"[" * 100_000, "GetConfigRequest"),
    ],
)
def test_decode_refuses_malformed_messages(codec, data, reason):
    fmt = wire.WireFormat(P.CONNECT, codec, "identity")
    with pytest.raises(RpcError) as err:
        wire.decode(fmt, data, pb.GetConfigRequest)
    assert err.value.code == Code.INVALID_ARGUMENT
    assert reason in err.value.message


def test_decode_accepts_empty_and_unknown_json_fields():
    fmt = wire.WireFormat(P.CONNECT, "json", "identity")
    assert wire.decode(fmt, b"", pb.GetConfigRequest) == pb.GetConfigRequest()
    parsed = wire.decode(fmt, b'{"monId":"x","future":1}', pb.GetConfigRequest)
    assert parsed == pb.GetConfigRequest(mon_id="x")
