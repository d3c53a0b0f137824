"""Kernel timestamps on real loopback sockets: each path the engine can take."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ntpmon.ntp import kerneltime
from ntpmon.ntp.kerneltime import Stamping
from ntpmon.ntp.sntp import query
from ntpmon.testing.ntpserver import ResponderSettings, build_reply


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["v4", "v6"])
def udp_pair(request: pytest.FixtureRequest):
    family, host = request.param
    with (
        socket.socket(family, socket.SOCK_DGRAM) as a,
        socket.socket(family, socket.SOCK_DGRAM) as b,
    ):
        a.bind((host, 0))
        b.bind((host, 0))
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        a.settimeout(2)
        b.settimeout(2)
        yield a, b


def test_kernel_stamping_is_available_here() -> None:
    # The engine's precision depends on it; the CI host is Linux on x86-64 or arm64.
    assert kerneltime.kernel_stamping_supported()


def _tx_stamp(sock: socket.socket, timeout: float = 2.0) -> int | None:
    """The send stamp, waiting longer than the engine does (``TX_STAMP_WAIT``): this test is
    about the stamp's value, and a loaded CI machine may queue it late."""
    deadline = time.monotonic() + timeout
    while (stamp := kerneltime.read_tx_stamp(sock)) is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return stamp


@pytest.fixture(scope="module")
def receive_stamps_on():
    """Receive stamping switched on in the kernel before a test relies on it.

    The kernel flips receive stamping on from a work queue after the first socket asks: on a
    busy machine the first datagram of the module arrived unstamped now and then. The agent's
    own keeper (up to 10 s for a stamped loopback datagram) removes that timing.
    """
    with kerneltime.receive_stamping_kept_on(warm_up=10) as on:
        assert on
        yield


def test_so_timestamping_stamps_both_directions(udp_pair, receive_stamps_on) -> None:
    sender, receiver = udp_pair
    assert kerneltime.enable_stamping(sender, Stamping.KERNEL) == kerneltime.SocketStamping(
        True, True
    )
    assert kerneltime.enable_stamping(receiver, Stamping.KERNEL).rx
    before = time.time_ns()
    sender.send(b"ping")
    _data, ancdata, _flags, _addr = receiver.recvmsg(64, kerneltime.ANCILLARY_BUFSIZE)
    after = time.time_ns()
    rx = kerneltime.stamp_from_ancillary(ancdata)
    tx = _tx_stamp(sender)
    # Same clock (CLOCK_REALTIME) as time_ns, taken between the two readings, send before receive.
    assert rx is not None
    assert tx is not None
    assert before <= tx <= rx <= after
    assert kerneltime.read_tx_stamp(sender) is None  # consumed; never blocks


def test_so_timestampns_receive_fallback(udp_pair, receive_stamps_on) -> None:
    sender, receiver = udp_pair
    receiver.setsockopt(socket.SOL_SOCKET, kerneltime.SO_TIMESTAMPNS, 1)
    before = time.time_ns()
    sender.send(b"ping")
    _data, ancdata, _flags, _addr = receiver.recvmsg(64, kerneltime.ANCILLARY_BUFSIZE)
    after = time.time_ns()
    assert [kind for _level, kind, _d in ancdata] == [kerneltime.SCM_TIMESTAMPNS]
    rx = kerneltime.stamp_from_ancillary(ancdata)
    assert rx is not None and before <= rx <= after


def test_user_stamping_asks_the_kernel_for_nothing(udp_pair) -> None:
    sender, receiver = udp_pair
    assert kerneltime.enable_stamping(receiver, Stamping.USER) == kerneltime.NO_STAMPING
    sender.send(b"ping")
    _data, ancdata, _flags, _addr = receiver.recvmsg(64, kerneltime.ANCILLARY_BUFSIZE)
    assert ancdata == []
    assert kerneltime.stamp_from_ancillary(ancdata) is None
    assert kerneltime.read_tx_stamp(sender) is None


@pytest.mark.parametrize(
    "ancdata",
    [
        [],
        [(socket.SOL_SOCKET, kerneltime.SCM_TIMESTAMPING, b"\0" * 48)],  # zero stamp = none
        [(socket.SOL_SOCKET, kerneltime.SCM_TIMESTAMPING, b"\1\2")],  # short
        [(socket.IPPROTO_IP, kerneltime.SCM_TIMESTAMPING, b"\1" * 48)],  # other level
    ],
)
def test_ancillary_data_without_a_usable_stamp(ancdata: list) -> None:
    assert kerneltime.stamp_from_ancillary(ancdata) is None


def _plain_responder(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """An NTP server whose own socket asks for no stamps (as a remote server would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            now = time.time_ns()
            reply = build_reply(data, ResponderSettings(), now, time.time_ns())
            if reply:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


def test_kept_on_receive_stamping_stamps_every_reply_despite_gaps() -> None:
    """With a socket per query and pauses between queries, the kernel's receive stamping is
    switched off and on again behind the agent's back: without the keeper, 6 to 10 of 12
    replies came back unstamped here (how many depends on the kernel's work queue). With it,
    every reply is stamped."""
    stop = threading.Event()
    server, thread = _plain_responder(stop)
    try:
        with kerneltime.receive_stamping_kept_on() as on:
            assert on
            stamps = []
            for _ in range(10):
                reply = query("127.0.0.1", port=server.getsockname()[1], timeout=2)
                stamps.append((reply.tx_stamp, reply.rx_stamp))
                time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
    assert stamps == [(Stamping.KERNEL, Stamping.KERNEL)] * 10


def test_the_keeper_is_a_no_op_where_kernel_stamps_are_not_supported(monkeypatch) -> None:
    monkeypatch.setattr(kerneltime, "kernel_stamping_supported", lambda: False)
    with kerneltime.receive_stamping_kept_on() as on:
        assert on is False
