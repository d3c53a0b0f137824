"""IP addresses on the wire (api.md §3.1, §7.2): 4 bytes for IPv4, 16 for IPv6.

A submitted ``ip_bytes`` of any length other than 4 is right-padded with zeros or truncated to
16 bytes and read as IPv6, exactly as upstream; re-encoding the result is what tickets are
verified against, so a malformed length can never match a ticket.
"""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ipv4_packed(text: str) -> bytes | None:
    """The 4 bytes of ``text`` if it is a canonical dotted quad, else None.

    A fast path (the C parser; ``ipaddress`` costs ~10x more and this runs for every server of
    every batch): only text that ``inet_ntop`` writes back identically is accepted, which is
    exactly the text ``ipaddress`` also reads as that address; everything else takes the
    ``ipaddress`` route.
    """
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    return packed if socket.inet_ntop(socket.AF_INET, packed) == text else None


def from_bytes(raw: bytes) -> IPAddress:
    """Decode wire bytes with upstream's 4/16 rule (never fails)."""
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    return ipaddress.IPv6Address(raw[:16].ljust(16, b"\0"))


def to_bytes(addr: IPAddress) -> bytes:
    """The wire form of an address: 4 or 16 bytes (an IPv4-mapped IPv6 address stays 16)."""
    return addr.packed


def text_to_bytes(text: str) -> bytes:
    """Wire bytes of an address stored as text; raises ValueError for a non-address."""
    return _ipv4_packed(text) or ipaddress.ip_address(text.strip()).packed


def canonical_text(addr: IPAddress) -> str:
    """Go's ``netip.Addr.String()``: IPv4 dotted quad, RFC 5952 IPv6, ``::ffff:a.b.c.d``.

    Python before 3.13 writes IPv4-mapped addresses in hex (``::ffff:c000:201``), so that case
    is formatted here; servers are looked up by this text.
    """
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def spellings(addr: IPAddress) -> set[str]:
    """Every text form a server row may hold for ``addr`` (Go's and Python's mapped forms)."""
    return {canonical_text(addr), str(addr)}


def canonical_of_text(text: str) -> str:
    """The canonical text of an address stored as text (unparseable text is kept as is)."""
    if _ipv4_packed(text) is not None:
        return text
    try:
        return canonical_text(ipaddress.ip_address(text))
    except ValueError:
        return text


def wire_forms(raw: bytes) -> tuple[bytes, str, frozenset[str]]:
    """For submitted ``ip_bytes``: the re-encoded bytes tickets are checked against, the
    canonical text and every stored spelling (``to_bytes``/``canonical_text``/``spellings`` of
    ``from_bytes(raw)``, with a fast path for the common 4-byte case)."""
    if len(raw) == 4:
        text = socket.inet_ntop(socket.AF_INET, raw)
        return raw, text, frozenset((text,))
    addr = from_bytes(raw)
    return to_bytes(addr), canonical_text(addr), frozenset(spellings(addr))
