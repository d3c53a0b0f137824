"""ULID text (26 Crockford base32 characters): registration ids and batch id checks."""

from __future__ import annotations

import secrets
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES = {c: i for i, c in enumerate(ALPHABET)}


def new_ulid(now_ms: int | None = None) -> str:
    """48-bit millisecond time plus 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def is_ulid(text: str) -> bool:
    """26 Crockford characters whose value fits 128 bits (first character ≤ 7)."""
    upper = text.upper()
    return len(upper) == 26 and all(c in _VALUES for c in upper) and _VALUES[upper[0]] <= 7
