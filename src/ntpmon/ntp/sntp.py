"""One SNTP sample: our own client, because the score depends on its precision and its honesty.

ntplib cannot bind a source address, does not check the origin timestamp, leaks the local time in
the request and takes its timestamps in Python after the scheduler has had its say (spec agent.md
§16). This client follows beevik/ntp v1.5, which upstream uses, in everything the server can see
(§11.1: request bytes, validity checks and their order, error texts, integer arithmetic), and
improves what only precision sees: T1 and T4 come from the kernel when it can stamp the datagrams
(``ntpmon.ntp.kerneltime``), and each response says which clock it used.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ntpmon.ntp import wire
from ntpmon.ntp.kerneltime import (
    ANCILLARY_BUFSIZE,
    Stamping,
    enable_stamping,
    read_tx_stamp,
    stamp_from_ancillary,
)

__all__ = [
    "NTPNetworkError",
    "NTPProtocolError",
    "NTPResponse",
    "Stamping",
    "build_request",
    "parse_response",
    "query",
]

DEFAULT_PORT = 123
DEFAULT_TIMEOUT = 3.0
RECV_BUFSIZE = 8192
REQUEST_PRECISION = 0x20
"""The precision byte beevik/ntp sends (kept so our requests look like upstream's)."""

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NTPNetworkError(Exception):
    """The query failed on the network; ``str(e)`` is the Go-style reason without ``network: ``."""


class NTPProtocolError(Exception):
    """The reply failed a validity check; ``str(e)`` is the spec's error text."""


@dataclass(frozen=True)
class NTPResponse:
    """One validated reply, with every duration in integer nanoseconds."""

    clock_offset_ns: int
    rtt_ns: int
    stratum: int
    leap: int
    version: int
    reference_id: int
    kiss_code: str
    precision_ns: int
    poll_ns: int
    root_delay_ns: int
    root_dispersion_ns: int
    root_distance_ns: int
    min_error_ns: int
    time: datetime
    reference_time: datetime
    tx_stamp: Stamping = Stamping.USER
    rx_stamp: Stamping = Stamping.USER

    @property
    def stamping(self) -> str:
        """``kernel`` (both stamps from the kernel), ``kernel-rx`` (receive only) or ``user``."""
        if self.rx_stamp is Stamping.KERNEL:
            return "kernel" if self.tx_stamp is Stamping.KERNEL else "kernel-rx"
        return "kernel-tx" if self.tx_stamp is Stamping.KERNEL else "user"

    @property
    def provable_error_ns(self) -> int:
        """A lower bound of the server's clock error: ``max(0, |offset| − rtt/2)``.

        The true offset lies within ±rtt/2 of the measured one whatever the path asymmetry, so
        anything beyond that is an error of the server's clock that no network can explain.
        """
        return max(0, abs(self.clock_offset_ns) - self.rtt_ns // 2)

    @property
    def uncertainty_ns(self) -> int:
        """How far the true offset to UTC can be from ours: rtt/2 + the server's root distance.

        That is ``(rtt + root_delay)/2 + root_dispersion``, the root distance of §11.1.
        """
        return self.root_distance_ns


def _datetime_from_unix_ns(unix_ns: int) -> datetime:
    return _UNIX_EPOCH + timedelta(microseconds=unix_ns // 1000)


def build_request() -> tuple[bytes, int]:
    """A 48-byte client request whose transmit timestamp is a random 64-bit nonce.

    The nonce hides our clock from the server (data minimisation) and makes a reply from anyone
    who did not see the request fail the origin check.
    """
    nonce = secrets.randbits(64)
    packet = wire.Packet(
        leap=0,
        version=4,
        mode=wire.MODE_CLIENT,
        precision=REQUEST_PRECISION,
        transmit_ts=nonce,
    )
    return wire.encode(packet), nonce


def parse_response(
    packet: bytes,
    *,
    nonce: int,
    t1_ns: int,
    t4_ns: int,
    tx_stamp: Stamping = Stamping.USER,
    rx_stamp: Stamping = Stamping.USER,
) -> NTPResponse:
    """Validate a reply in the spec's order and compute its figures.

    ``t1_ns``/``t4_ns`` are the wall-clock send and receive times in ns since the Unix epoch.
    Raises ``NTPProtocolError`` with the exact text of §11.1 for an invalid reply.
    """
    if len(packet) < wire.PACKET_LEN:
        raise NTPProtocolError("unexpected EOF" if packet else "EOF")
    p = wire.decode(packet)
    if p.mode != wire.MODE_SERVER:
        raise NTPProtocolError("invalid mode in response")
    if p.transmit_ts == 0:
        raise NTPProtocolError("invalid transmit time in response")
    if p.origin_ts != nonce:
        raise NTPProtocolError("server response didn't match request")
    if p.receive_ts > p.transmit_ts:
        raise NTPProtocolError("server clock ticked backwards")

    org = wire.unix_ns_to_ntp(t1_ns)
    dst = wire.unix_ns_to_ntp(t4_ns)
    rec, xmt = p.receive_ts, p.transmit_ts
    rtt = wire.round_trip(org, rec, xmt, dst)
    root_delay = wire.q16_to_ns(p.root_delay)
    root_dispersion = wire.q16_to_ns(p.root_dispersion)
    return NTPResponse(
        clock_offset_ns=wire.clock_offset(org, rec, xmt, dst),
        rtt_ns=rtt,
        stratum=p.stratum,
        leap=p.leap,
        version=p.version,
        reference_id=p.reference_id,
        kiss_code=wire.kiss_code(p.stratum, p.reference_id),
        precision_ns=wire.log2_seconds_to_ns(p.precision),
        poll_ns=wire.log2_seconds_to_ns(p.poll),
        root_delay_ns=root_delay,
        root_dispersion_ns=root_dispersion,
        root_distance_ns=(rtt + root_delay) // 2 + root_dispersion,
        min_error_ns=wire.min_error(org, rec, xmt, dst),
        time=_datetime_from_unix_ns(wire.ntp_to_unix_ns(xmt)),
        reference_time=_datetime_from_unix_ns(wire.ntp_to_unix_ns(p.reference_ts)),
        tx_stamp=tx_stamp,
        rx_stamp=rx_stamp,
    )


def _reason(op: str, exc: OSError) -> NTPNetworkError:
    """Go-style ``<op>: <lower-case strerror>`` (e.g. ``read: connection refused``)."""
    if isinstance(exc, TimeoutError):
        return NTPNetworkError("i/o timeout")
    if exc.errno is None:
        return NTPNetworkError(f"{op}: {exc}")
    text = os.strerror(exc.errno)
    return NTPNetworkError(f"{op}: {text[:1].lower()}{text[1:]}")


def bind_source(sock: socket.socket, family: socket.AddressFamily, local_address: str) -> None:
    """Bind to an address literal of the socket's family (never a name: no resolver traffic)."""
    try:
        source = ipaddress.ip_address(local_address.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        raise NTPNetworkError("bind: invalid argument") from None
    if (source.version == 6) != (family == socket.AF_INET6):
        raise _reason("bind", OSError(errno.EAFNOSUPPORT, "")) from None
    try:
        sock.bind((str(source), 0))
    except OSError as exc:
        raise _reason("bind", exc) from None


def resolve_target(host: str, port: int) -> tuple[socket.AddressFamily, tuple]:
    """The socket family and address for an IP literal (``[v6]`` accepted) or a host name."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        flags = socket.AI_NUMERICHOST
    except ValueError:
        flags = 0
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=flags)
    except (socket.gaierror, UnicodeError) as exc:
        raise NTPNetworkError(f"lookup {host}: no such host") from exc
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, sockaddr


def query(
    host: str,
    *,
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    local_address: str | None = None,
    stamping: Stamping = Stamping.KERNEL,
) -> NTPResponse:
    """Send one request to ``host`` and validate the first datagram that comes back.

    A fresh connected UDP socket per query (bound to ``local_address`` when given) means only the
    target's replies are read and ICMP errors surface as ``connection refused``. One deadline of
    ``timeout`` seconds covers send and receive. ``stamping=Stamping.USER`` forces the user-space
    clock readings (the fallback, also used by the benchmark for comparison).
    Raises ``NTPNetworkError`` or ``NTPProtocolError``.
    """
    family, sockaddr = resolve_target(host, port)
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        granted = enable_stamping(sock, stamping)
        if local_address:
            bind_source(sock, family, local_address)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            raise _reason("connect", exc) from None
        request, nonce = build_request()
        # The remaining time covers send and receive; nothing else runs between the clock
        # readings and the system calls, so the user-space fallback stays as tight as it can.
        sock.settimeout(max(deadline - time.monotonic(), 1e-6))
        t1_user = time.time_ns()
        m1 = time.monotonic_ns()
        try:
            sock.send(request)
        except OSError as exc:
            raise _reason("write", exc) from None
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(RECV_BUFSIZE, ANCILLARY_BUFSIZE)
        except OSError as exc:
            raise _reason("read", exc) from None
        m4 = time.monotonic_ns()
        tx_kernel = read_tx_stamp(sock) if granted.tx else None
        rx_kernel = stamp_from_ancillary(ancdata) if granted.rx else None

    t1 = tx_kernel if tx_kernel is not None else t1_user
    # Without a kernel stamp, T4 = T1 + elapsed monotonic time, so a wall-clock step between
    # send and receive cannot distort the sample (as Go's monotonic time.Since does upstream).
    t4 = rx_kernel if rx_kernel is not None else t1_user + max(0, m4 - m1)
    t4 = max(t4, t1)
    return parse_response(
        data,
        nonce=nonce,
        t1_ns=t1,
        t4_ns=t4,
        tx_stamp=Stamping.KERNEL if tx_kernel is not None else Stamping.USER,
        rx_stamp=Stamping.KERNEL if rx_kernel is not None else Stamping.USER,
    )
