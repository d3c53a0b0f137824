"""IP address helpers with Go ``netip`` semantics, which the server-side expectations assume.

Python's ``ipaddress.is_private`` is far broader than Go's ``IsPrivate`` (it includes
100.64/10, 169.254/16, documentation ranges, ...), and upstream probes all of those, so the
classes here are spelled out (spec agent.md §11.2).
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_LOOPBACK = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128"))
_MULTICAST = tuple(ipaddress.ip_network(n) for n in ("224.0.0.0/4", "ff00::/8"))


def as_ip(value: object) -> IPAddress | None:
    """An address from an ``ipaddress`` object, text, or 4/16 packed bytes; None if invalid.

    IPv4-mapped IPv6 addresses are unmapped, as Go's ``netip.Addr.Unmap`` does.
    """
    addr: IPAddress
    try:
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            addr = value
        elif isinstance(value, bytes | bytearray):
            if len(value) not in (4, 16):
                return None
            addr = ipaddress.ip_address(bytes(value))
        elif isinstance(value, str) and value:
            addr = ipaddress.ip_address(value.strip().removeprefix("[").removesuffix("]"))
        else:
            return None
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _within(addr: IPAddress, networks: tuple) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def is_loopback(addr: IPAddress) -> bool:
    """127.0.0.0/8 and ::1."""
    return _within(addr, _LOOPBACK)


def is_private(addr: IPAddress) -> bool:
    """Only 10/8, 172.16/12, 192.168/16 and fc00::/7 (Go ``netip.Addr.IsPrivate``)."""
    return _within(addr, _PRIVATE)


def is_multicast(addr: IPAddress) -> bool:
    """224.0.0.0/4 and ff00::/8."""
    return _within(addr, _MULTICAST)
