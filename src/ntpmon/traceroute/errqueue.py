"""Parsing what ``recvmsg(MSG_ERRQUEUE)`` returns on Linux (``ip(7)``, ``ipv6(7)``).

With ``IP_RECVERR`` (``IPV6_RECVERR``) set, the kernel queues every ICMP error that quotes one of
our datagrams on the sending socket's error queue, with a control message carrying a
``struct sock_extended_err`` followed by the address of the node that sent the error (the
"offender"). The same queue carries our transmit timestamps (origin ``SO_EE_ORIGIN_TIMESTAMPING``),
so each message is classified here. No I/O: the engine hands in the ancillary data it read.

CPython exports neither ``IP_RECVERR`` nor ``IPV6_RECVERR`` nor the struct, so they are written
out here (values from ``linux/in.h``, ``linux/in6.h``, ``linux/errqueue.h``; identical on every
Linux architecture).
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

IP_RECVERR = 11
IPV6_RECVERR = 25
SOL_IP = 0
SOL_IPV6 = 41

SO_EE_ORIGIN_NONE = 0
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
SO_EE_ORIGIN_TIMESTAMPING = 4

ICMP_DEST_UNREACH = 3
ICMP_TIME_EXCEEDED = 11
ICMP_PORT_UNREACH = 3
ICMP6_DST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_PORT_UNREACH = 4

_EXTENDED_ERR = struct.Struct("=IBBBBII")
"""``ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data`` (native order)."""
_SOCKADDR_HEAD = struct.Struct("=H")
_SOCKADDR_IN = struct.Struct("=H2s4s")
_SOCKADDR_IN6 = struct.Struct("=H2s4s16sI")


class ErrKind(enum.StrEnum):
    """What one error-queue message means for a probe."""

    TIME_EXCEEDED = "time-exceeded"
    """A router on the path dropped the probe when its TTL / hop limit ran out: a hop."""
    PORT_UNREACHABLE = "port-unreachable"
    """The destination itself answered that nothing listens on the port: reached."""
    UNREACHABLE = "unreachable"
    """Net, host or administratively unreachable from a router: the path ends there."""
    OTHER_ICMP = "icmp-other"
    """Any other ICMP error (packet too big, parameter problem): a hop that answered."""
    LOCAL = "local"
    """An error raised by this host's own stack (no offender on the path)."""
    TX_STAMP = "tx-stamp"
    """Not an error: the kernel's transmit timestamp of the datagram."""


@dataclass(frozen=True, slots=True)
class ExtendedError:
    """One ``struct sock_extended_err`` with its offender address (None when absent)."""

    errno: int
    origin: int
    type: int
    code: int
    info: int
    data: int
    offender: str | None

    @property
    def kind(self) -> ErrKind:
        return classify(self.origin, self.type, self.code)


def classify(origin: int, icmp_type: int, code: int) -> ErrKind:
    """The meaning of an (origin, ICMP type, code) triple for a traceroute."""
    if origin == SO_EE_ORIGIN_TIMESTAMPING:
        return ErrKind.TX_STAMP
    if origin == SO_EE_ORIGIN_ICMP:
        if icmp_type == ICMP_TIME_EXCEEDED:
            return ErrKind.TIME_EXCEEDED
        if icmp_type == ICMP_DEST_UNREACH:
            return ErrKind.PORT_UNREACHABLE if code == ICMP_PORT_UNREACH else ErrKind.UNREACHABLE
        return ErrKind.OTHER_ICMP
    if origin == SO_EE_ORIGIN_ICMP6:
        if icmp_type == ICMP6_TIME_EXCEEDED:
            return ErrKind.TIME_EXCEEDED
        if icmp_type == ICMP6_DST_UNREACH:
            return ErrKind.PORT_UNREACHABLE if code == ICMP6_PORT_UNREACH else ErrKind.UNREACHABLE
        return ErrKind.OTHER_ICMP
    return ErrKind.LOCAL


def parse_sockaddr(data: bytes) -> str | None:
    """The address of a ``sockaddr_in``/``sockaddr_in6``; None for ``AF_UNSPEC`` or short data.

    The kernel leaves the offender zeroed (family ``AF_UNSPEC``) for local errors and for
    timestamps, so None means "nobody on the path".
    """
    if len(data) < _SOCKADDR_HEAD.size:
        return None
    (family,) = _SOCKADDR_HEAD.unpack_from(data)
    if family == socket.AF_INET and len(data) >= _SOCKADDR_IN.size:
        _f, _port, addr4 = _SOCKADDR_IN.unpack_from(data)
        return str(ipaddress.IPv4Address(addr4))
    if family == socket.AF_INET6 and len(data) >= _SOCKADDR_IN6.size:
        _f, _port, _flow, addr6, _scope = _SOCKADDR_IN6.unpack_from(data)
        address = ipaddress.IPv6Address(addr6)
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else str(address)
    return None


def parse_extended_err(data: bytes) -> ExtendedError:
    """A ``sock_extended_err`` control message body; ValueError when it is too short."""
    if len(data) < _EXTENDED_ERR.size:
        raise ValueError(f"sock_extended_err needs {_EXTENDED_ERR.size} bytes, got {len(data)}")
    err, origin, icmp_type, code, _pad, info, extra = _EXTENDED_ERR.unpack_from(data)
    offender = None
    if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
        offender = parse_sockaddr(data[_EXTENDED_ERR.size :])
    return ExtendedError(err, origin, icmp_type, code, info, extra, offender)


def extended_err_from_ancillary(
    ancdata: Iterable[tuple[int, int, bytes]],
) -> ExtendedError | None:
    """The ``IP_RECVERR``/``IPV6_RECVERR`` message among ``recvmsg`` ancillary data, if any."""
    for level, kind, data in ancdata:
        if (level, kind) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            try:
                return parse_extended_err(data)
            except ValueError:
                return None
    return None


def enable_recverr(sock: socket.socket, family: int) -> None:
    """Ask for extended errors on ``sock`` (an unprivileged option on both families)."""
    if family == socket.AF_INET6:
        sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(SOL_IP, IP_RECVERR, 1)


def set_hop_limit(sock: socket.socket, family: int, hops: int) -> None:
    """The TTL (IPv4) or unicast hop limit (IPv6) of the datagrams ``sock`` sends."""
    if family == socket.AF_INET6:
        sock.setsockopt(SOL_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    else:
        sock.setsockopt(SOL_IP, socket.IP_TTL, hops)
