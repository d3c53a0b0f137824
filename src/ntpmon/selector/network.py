"""IP parsing and prefix arithmetic for the network constraints (spec/selector.md §6.1, §6.5).

Parsing is strict, as upstream's: no surrounding whitespace, no leading zeros in IPv4 octets,
and an IPv4-mapped IPv6 address stays IPv6. Addresses are kept as (version, integer) so prefix
comparisons are shifts, which keeps a review of a server with hundreds of monitors cheap.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from ntpmon.selector.constants import DIVERSITY_V4, DIVERSITY_V6, SUBNET_V4, SUBNET_V6

ParsedIp = tuple[int, int]  # (version, address as an integer)

_BITS = {4: 32, 6: 128}
SUBNET_PREFIX = {4: SUBNET_V4, 6: SUBNET_V6}
DIVERSITY_PREFIX = {4: DIVERSITY_V4, 6: DIVERSITY_V6}


def _parse_v4(text: str) -> ParsedIp | None:
    """Dotted-quad IPv4 through the C library: strict like ``ipaddress`` (no leading zeros,
    no whitespace, exactly four octets; the tests pin this) and much cheaper per address."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, UnicodeError, ValueError):
        return None
    return 4, int.from_bytes(packed, "big")


def parse_ip(text: str) -> ParsedIp | None:
    """``(version, int)`` for a valid address, None for anything else."""
    if ":" not in text:
        return _parse_v4(text)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr.version, int(addr)


def network_key(ip: ParsedIp, prefixes: dict[int, int]) -> tuple[int, int]:
    """The (version, network number) of ``ip`` for the prefix length of its family."""
    version, value = ip
    return version, value >> (_BITS[version] - prefixes[version])


def same_network(a: ParsedIp, b: ParsedIp, prefixes: dict[int, int]) -> bool:
    """True iff both addresses are of one family and share the family's prefix."""
    return a[0] == b[0] and network_key(a, prefixes) == network_key(b, prefixes)


class IpCache:
    """Parses each distinct address text once per review."""

    __slots__ = ("_parsed",)

    def __init__(self) -> None:
        self._parsed: dict[str, ParsedIp | None] = {}

    def parse(self, text: str) -> ParsedIp | None:
        try:
            return self._parsed[text]
        except KeyError:
            parsed = self._parsed[text] = parse_ip(text)
            return parsed

    def parse_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.parse(text)
