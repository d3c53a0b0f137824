"""The NTP packet format and its fixed-point numbers, as pure functions (no sockets, no clocks).

Everything here works on integers: NTP timestamps are unsigned Q32.32, root delay and dispersion
unsigned Q16.16, poll and precision signed powers of two. Floats would lose the sub-microsecond
resolution the engine exists to keep, and the conversions must round exactly as the reference
client (beevik/ntp v1.5) does, because the server scores what we report (spec agent.md §11.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PACKET_LEN = 48
MASK64 = (1 << 64) - 1
NS_PER_S = 1_000_000_000
UNIX_TO_NTP_S = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""
ERA_SPLIT = UNIX_TO_NTP_S << 32
"""NTP timestamps below this (before 1970 in era 0) are read as era 1 (from 2036-02-07)."""

MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_NOT_IN_SYNC = 3

_LAYOUT = struct.Struct("!BBbbIII4Q")


@dataclass(frozen=True)
class Packet:
    """The 48-byte NTP header, field by field, as the integers on the wire."""

    leap: int = 0
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0
    root_dispersion: int = 0
    reference_id: int = 0
    reference_ts: int = 0
    origin_ts: int = 0
    receive_ts: int = 0
    transmit_ts: int = 0


def encode(packet: Packet) -> bytes:
    """Serialise a header; raises ``ValueError`` for a field out of its wire range."""
    if not (0 <= packet.leap <= 3 and 0 <= packet.version <= 7 and 0 <= packet.mode <= 7):
        raise ValueError("leap, version or mode out of range")
    first = (packet.leap << 6) | (packet.version << 3) | packet.mode
    try:
        return _pack(first, packet)
    except struct.error as exc:
        raise ValueError(f"NTP header field out of range: {exc}") from None


def _pack(first: int, packet: Packet) -> bytes:
    return _LAYOUT.pack(
        first,
        packet.stratum,
        packet.poll,
        packet.precision,
        packet.root_delay,
        packet.root_dispersion,
        packet.reference_id,
        packet.reference_ts,
        packet.origin_ts,
        packet.receive_ts,
        packet.transmit_ts,
    )


def decode(data: bytes) -> Packet:
    """Parse the first 48 bytes (extensions and MACs after them are ignored).

    The caller checks the length first, because a short packet has its own error text.
    """
    (first, stratum, poll, precision, rdelay, rdisp, refid, ref, org, rec, xmt) = (
        _LAYOUT.unpack_from(data)
    )
    return Packet(
        leap=first >> 6,
        version=(first >> 3) & 0x7,
        mode=first & 0x7,
        stratum=stratum,
        poll=poll,
        precision=precision,
        root_delay=rdelay,
        root_dispersion=rdisp,
        reference_id=refid,
        reference_ts=ref,
        origin_ts=org,
        receive_ts=rec,
        transmit_ts=xmt,
    )


def s64(value: int) -> int:
    """Wrap an integer to a signed 64-bit value, as Go's ``int64(uint64)`` conversion does."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def ufrac_to_ns(value: int, frac_bits: int) -> int:
    """Unsigned fixed point with ``frac_bits`` fraction bits → ns, rounding the remainder half up.

    The result wraps like a Go ``time.Duration`` built from uint64 arithmetic.
    """
    whole = (value >> frac_bits) * NS_PER_S
    frac = (value & ((1 << frac_bits) - 1)) * NS_PER_S
    nsec = frac >> frac_bits
    if frac & ((1 << frac_bits) - 1) >= 1 << (frac_bits - 1):
        nsec += 1
    return s64(whole + nsec)


def q32_interval_to_ns(value: int) -> int:
    """A signed Q32.32 interval → ns; negatives are converted by magnitude, then negated."""
    if value < 0:
        return -ufrac_to_ns(-value & MASK64, 32)
    return ufrac_to_ns(value, 32)


def q16_to_ns(value: int) -> int:
    """An unsigned Q16.16 value (root delay, root dispersion) → ns."""
    return ufrac_to_ns(value & 0xFFFFFFFF, 16)


def log2_seconds_to_ns(exponent: int) -> int:
    """A signed power-of-two exponent (poll, precision) → ns, with Go's shift semantics."""
    if exponent > 0:
        return s64(NS_PER_S << exponent) if exponent < 64 else 0
    if exponent < 0:
        return NS_PER_S >> -exponent
    return NS_PER_S


def unix_ns_to_ntp(unix_ns: int) -> int:
    """Wall time (ns since the Unix epoch) → NTP Q32.32 (wrapping into era 1 after 2036)."""
    since_1900 = unix_ns + UNIX_TO_NTP_S * NS_PER_S
    seconds, rem = divmod(since_1900, NS_PER_S)
    scaled = rem << 32
    frac = scaled // NS_PER_S
    if scaled % NS_PER_S >= NS_PER_S // 2:
        frac += 1
    return ((seconds << 32) | frac) & MASK64


def ntp_to_unix_ns(ntp: int) -> int:
    """NTP Q32.32 → ns since the Unix epoch; values before 1970 in era 0 count as era 1."""
    era_base = (1 << 32) if ntp < ERA_SPLIT else 0
    seconds = (ntp >> 32) + era_base - UNIX_TO_NTP_S
    return seconds * NS_PER_S + ufrac_to_ns(ntp & 0xFFFFFFFF, 32)


def clock_offset(org: int, rec: int, xmt: int, dst: int) -> int:
    """((rec − org) + (xmt − dst)) / 2 in ns, computed as beevik/ntp does (int64, toward zero)."""
    a = s64(rec - org)
    b = s64(xmt - dst)
    diff = s64(b - a)
    half = -((-diff) // 2) if diff < 0 else diff // 2
    return q32_interval_to_ns(s64(a + half))


def round_trip(org: int, rec: int, xmt: int, dst: int) -> int:
    """(dst − org) − (xmt − rec) in ns, never negative."""
    rtt = s64(s64(dst - org) - s64(xmt - rec))
    return q32_interval_to_ns(max(0, rtt))


def min_error(org: int, rec: int, xmt: int, dst: int) -> int:
    """The larger causality violation of the two timestamp pairs (0 when neither is violated)."""
    error0 = (org - rec) & MASK64 if org >= rec else 0
    error1 = (xmt - dst) & MASK64 if xmt >= dst else 0
    return ufrac_to_ns(max(error0, error1), 32)


def kiss_code(stratum: int, reference_id: int) -> str:
    """The refid as four ASCII characters for a stratum-0 reply when all are printable, else ""."""
    if stratum != 0:
        return ""
    raw = reference_id.to_bytes(4, "big")
    if all(32 <= ch <= 126 for ch in raw):
        return raw.decode("ascii")
    return ""


def reference_id_text(reference_id: int) -> str:
    """The refid as the spec's error texts show it: hex, plus the bytes when they are UTF-8.

    NUL bytes are valid UTF-8 and are kept, as upstream does (spec §11.2).
    """
    text = hex(reference_id)
    try:
        return f"{text}, {reference_id.to_bytes(4, 'big').decode('utf-8')}"
    except UnicodeDecodeError:
        return text
