"""ULIDs: the batch ids of GetServers and the registration ids of ``setup`` (api.md §7.1).

128 bits: a 48-bit big-endian Unix time in milliseconds, then 80 random bits, written as 26
Crockford base32 characters. Parsing is strict: characters outside the alphabet (including
``I L O U``) are refused instead of being decoded to garbage as upstream did.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES = {c: i for i, c in enumerate(ALPHABET)}
LENGTH = 26


class InvalidUlidError(ValueError):
    """Text that is not a ULID."""


@dataclass(frozen=True, slots=True)
class Ulid:
    """A parsed ULID: the canonical upper-case text and its embedded millisecond time."""

    text: str
    millis: int

    @property
    def time(self) -> datetime:
        """The creation time as an aware UTC datetime (millisecond precision).

        48 bits of milliseconds reach the year 10889, past what ``datetime`` holds: such an
        id parses (it is a well-formed ULID) but has no time, and that is the caller's bad
        input, so it raises :class:`InvalidUlidError` rather than a bare ValueError that
        would pass for a bug.
        """
        try:
            return datetime.fromtimestamp(self.millis / 1000, tz=UTC).replace(
                microsecond=(self.millis % 1000) * 1000
            )
        except (ValueError, OverflowError, OSError):
            raise InvalidUlidError(f"ULID time {self.millis} ms is past datetime's range") from None


def encode(value: int) -> str:
    """The 26-character text of a 128-bit integer."""
    chars = []
    for _ in range(LENGTH):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ulid(now: datetime) -> Ulid:
    """A fresh ULID stamped with ``now`` (the id is not secret; randomness avoids collisions)."""
    millis = int(now.timestamp() * 1000)
    value = (millis << 80) | secrets.randbits(80)
    return Ulid(encode(value), millis)


def parse_ulid(text: str | bytes) -> Ulid:
    """Decode ULID text case-insensitively; raise :class:`InvalidUlidError` otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidUlidError("ULID is not ASCII") from None
    if not text.isascii():  # upper() would turn "ß" into "SS", a valid pair of characters
        raise InvalidUlidError("ULID is not ASCII")
    upper = text.upper()
    if len(upper) != LENGTH:
        raise InvalidUlidError(f"ULID must be {LENGTH} characters, got {len(upper)}")
    if upper[0] > "7":
        raise InvalidUlidError("ULID overflows 128 bits")
    value = 0
    for char in upper:
        digit = _VALUES.get(char)
        if digit is None:
            raise InvalidUlidError(f"invalid ULID character {char!r}")
        value = (value << 5) | digit
    return Ulid(upper, value >> 80)


def is_ulid(text: str | bytes) -> bool:
    """Whether ``text`` parses as a ULID (the agent checks batch ids before echoing them)."""
    try:
        parse_ulid(text)
    except InvalidUlidError:
        return False
    return True
