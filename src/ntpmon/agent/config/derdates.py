"""The validity dates of a DER certificate, read with a few lines instead of ``cryptography``.

The long-running ``monitor`` process needs only notBefore/notAfter of its own certificate;
importing ``cryptography`` for that costs ~9 MB of RSS (its bundled OpenSSL), a third of the
agent's memory target. X.509 fixes the path to the dates (RFC 5280 §4.1): Certificate →
tbsCertificate → [version], serialNumber, signature, issuer, validity → two times.
"""

from __future__ import annotations

from datetime import UTC, datetime

_SEQUENCE, _INTEGER, _VERSION = 0x30, 0x02, 0xA0
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


class DERError(ValueError):
    """Not a DER certificate this reader understands."""


def _element(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``pos`` (definite lengths only)."""
    if pos + 2 > end:
        raise DERError("truncated element")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or pos + size > end:
            raise DERError("bad length")
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > end:
        raise DERError("truncated element")
    return tag, pos, pos + length


def _expect(der: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _element(der, pos, end)
    if got != tag:
        raise DERError(f"unexpected tag 0x{got:02x}, wanted 0x{tag:02x}")
    return start, stop


def _time(der: bytes, pos: int, end: int) -> tuple[datetime, int]:
    """A UTCTime (two-digit year, RFC 5280's 1950–2049 window) or GeneralizedTime, UTC only."""
    tag, start, stop = _element(der, pos, end)
    text = der[start:stop].decode("ascii", errors="replace")
    if tag == _UTC_TIME and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME or len(text) != 15 or not text.endswith("Z"):
        raise DERError(f"unsupported time {text!r}")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC), stop
    except ValueError:
        raise DERError(f"bad time {text!r}") from None


def validity(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a DER-encoded X.509 certificate, as aware UTC datetimes."""
    start, end = _expect(der, 0, len(der), _SEQUENCE)  # Certificate
    pos, end = _expect(der, start, end, _SEQUENCE)  # tbsCertificate
    tag, _, stop = _element(der, pos, end)
    if tag == _VERSION:
        pos = stop
    pos = _expect(der, pos, end, _INTEGER)[1]  # serialNumber
    pos = _expect(der, pos, end, _SEQUENCE)[1]  # signature
    pos = _expect(der, pos, end, _SEQUENCE)[1]  # issuer
    pos, stop = _expect(der, pos, end, _SEQUENCE)  # validity
    not_before, pos = _time(der, pos, stop)
    not_after, _ = _time(der, pos, stop)
    return not_before, not_after
