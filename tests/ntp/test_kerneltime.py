"""Kernel timestamps on real loopback sockets: each path the engine can take."""

from __future__ import annotations

import socket
import time

import pytest

from ntpmon.agent import kerneltime
from ntpmon.agent.kerneltime import Stamping


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

    The kernel stamps received packets only while some socket asks for it, and the first ask
    flips that switch (a static key) later, from a work queue: until then SO_TIMESTAMPING
    delivers no receive stamp (SO_TIMESTAMPNS stamps at ``recvmsg`` instead). On an idle
    machine the first datagram of the module arrived unstamped now and then. A socket that
    keeps the switch on, and one datagram seen stamped through it, remove that timing.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as keeper:
        keeper.bind(("127.0.0.1", 0))
        keeper.connect(keeper.getsockname())
        keeper.settimeout(1)
        assert kerneltime.enable_stamping(keeper, Stamping.KERNEL).rx
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            keeper.send(b"on?")
            _data, ancdata, _flags, _addr = keeper.recvmsg(16, kerneltime.ANCILLARY_BUFSIZE)
            while kerneltime.read_tx_stamp(keeper, wait=0) is not None:
                pass  # keep the error queue empty
            if kerneltime.stamp_from_ancillary(ancdata) is not None:
                break
            time.sleep(0.005)
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
