"""Issue 15 item 7: bad requests on the RPC port log at most one WARNING line each, rate-limited
per peer, and never a traceback (1000 bad requests of five kinds against a real listener)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_testkit import RunningApi
from hardening_kit import client_context
from rpc_clients import Peer, RpcCallError, rpc_client

from ntpmon.api.rpc.badrequests import OneLineFilter, PeerBuckets, tame

pytestmark = pytest.mark.db

GARBAGE_PROTOBUF = b"\xff\xff\xff\xff"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    root = logging.getLogger()
    handler, level = Recorder(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _raw_tls(api: RunningApi, alpn: str, payload: bytes) -> None:
    tls = client_context(api.ca.root_pem())
    tls.set_alpn_protocols([alpn])
    with tls.wrap_socket(
        socket.create_connection(("127.0.0.1", api.port), timeout=10), server_hostname="localhost"
    ) as sock:
        sock.sendall(payload)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


def _raw_tcp(api: RunningApi, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(payload)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


def _connect_garbage(api: RunningApi, count: int) -> int:
    """Undecodable protobuf over Connect (HTTP/1.1, one kept-alive connection)."""
    with rpc_client("connect-h1", Peer(api.port, api.ca.root_pem(), api.client_cert())) as client:
        for _ in range(count):
            assert client.post("GetConfig", GARBAGE_PROTOBUF).status == 400
    return count


def _truncated_frames(api: RunningApi, count: int) -> int:
    """gRPC-Web frames that announce more than they carry."""
    with rpc_client("grpcweb", Peer(api.port, api.ca.root_pem(), api.client_cert())) as client:
        for _ in range(count):
            assert client.post("GetConfig", b"\x00\x00\x00\x01\x00x").status == 200
    return count


def _grpc_garbage(api: RunningApi, count: int) -> int:
    with rpc_client("grpc", Peer(api.port, api.ca.root_pem(), api.client_cert())) as client:
        for _ in range(count):
            with pytest.raises(RpcCallError):
                client.call_raw("GetServers", GARBAGE_PROTOBUF)
    return count


def _h2_garbage(api: RunningApi, count: int) -> int:
    """An HTTP/2 preface followed by a malformed frame."""
    for _ in range(count):
        _raw_tls(api, "h2", H2_PREFACE + b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\xee" * 64)
    return count


def _tls_garbage(api: RunningApi, count: int) -> int:
    """Plain HTTP on the TLS port, or a broken TLS record."""
    for i in range(count):
        _raw_tcp(
            api, b"GET / HTTP/1.1\r\n\r\n" if i % 2 else b"\x16\x03\x01\x00\x05" + b"\x99" * 64
        )
    return count


def _bad_requests(api: RunningApi) -> int:
    """1000 bad requests of five kinds, ten senders at once; returns how many were sent."""
    jobs = [(_connect_garbage, 100)] * 4 + [(_truncated_frames, 100)] * 2
    jobs += [(_grpc_garbage, 100)] * 2 + [(_h2_garbage, 100), (_tls_garbage, 100)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return sum(pool.map(lambda job: job[0](api, job[1]), jobs))


def test_a_thousand_bad_requests_log_a_few_warning_lines_and_no_traceback(
    api: RunningApi, recorder: Recorder
):
    sent = _bad_requests(api)
    time.sleep(0.5)  # the listener's thread logs the last ones
    noisy = [r for r in recorder.records if r.levelno >= logging.WARNING]
    tracebacks = [r for r in recorder.records if r.exc_info or r.exc_text or r.stack_info]
    print(f"\n{sent} bad requests: {len(noisy)} WARNING+ lines, {len(tracebacks)} tracebacks")
    for record in noisy:
        print(f"  {record.levelname} {record.name}: {record.reason}")  # type: ignore[attr-defined]
    assert sent == 1000
    assert tracebacks == []
    assert all(r.levelno == logging.WARNING for r in noisy)
    assert 1 <= len(noisy) <= 20  # reported, but at the bucket's rate, not one per request
    assert all(r.name == "ntpmon.api.rpc.bad_request" for r in noisy)
    for record in noisy:
        assert record.peer.startswith("ipv4:127.0.0.1:")  # type: ignore[attr-defined]
        assert record.reason  # type: ignore[attr-defined]


def test_buckets_refill_count_what_they_refused_and_forget_old_peers():
    now = [0.0]
    buckets = PeerBuckets(rate=1.0, burst=2, max_peers=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0, 0, None, None]
    now[0] += 1.0
    assert buckets.take("a") == 2  # one token back; the two refused are reported with it
    for peer in ("b", "c", "d", "e"):
        buckets.take(peer)
    assert len(buckets) == 3  # bounded: "a" (least recently seen) and "b" are forgotten
    assert buckets.take("a") == 0


def test_hypercorn_error_logger_writes_one_warning_line_without_traceback(recorder: Recorder):
    logger = tame(logging.getLogger("ntpmon.api.rpc.http"))
    tame(logger)  # idempotent
    assert sum(isinstance(f, OneLineFilter) for f in logger.filters) == 1
    for _ in range(100):
        try:
            raise ValueError("stream 7\nsecond line")
        except ValueError:
            logger.exception("Error in ASGI Framework")
    mine = [r for r in recorder.records if r.name == "ntpmon.api.rpc.http"]
    assert 1 <= len(mine) <= 5
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in mine)
    assert mine[0].getMessage() == "Error in ASGI Framework: ValueError: stream 7"
