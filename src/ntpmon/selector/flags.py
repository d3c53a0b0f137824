"""``accounts.flags`` → the per-server monitor limit (spec/selector.md §5.1).

Upstream decodes the JSON into a Go struct, so the rules are Go's: keys match
case-insensitively (the last one wins), a known key with the wrong type fails the whole decode,
numbers for integer fields must be integer literals that fit an int64, and ``null`` leaves a
field at zero. Any failure, and any limit ≤ 0, gives the default of 2.
"""

from __future__ import annotations

import json
from typing import Any

from ntpmon.selector.constants import DEFAULT_ACCOUNT_LIMIT

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class _FlagsDecodeError(ValueError):
    """The flags would not decode into upstream's struct."""


class _Pairs(list[tuple[str, Any]]):
    """The key/value pairs of one JSON object, in document order."""


class _FloatLiteral(float):
    """A JSON number written with a fraction or exponent: never an integer for Go."""


def _reject_constant(name: str) -> Any:
    raise _FlagsDecodeError(f"invalid JSON constant {name}")


def _go_int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FlagsDecodeError("not an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _FlagsDecodeError("integer out of range")
    return value


def _go_bool(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _FlagsDecodeError("not a boolean")
    return value


_FIELDS = {
    "monitor_limit": _go_int,
    "monitors_per_server_limit": _go_int,
    "monitor_enabled": _go_bool,
}


def _decode(raw: str) -> dict[str, Any]:
    pairs = json.loads(
        raw,
        object_pairs_hook=_Pairs,
        parse_float=_FloatLiteral,
        parse_constant=_reject_constant,
    )
    if pairs is None:
        return {}
    if not isinstance(pairs, _Pairs):
        raise _FlagsDecodeError("not an object")
    decoded: dict[str, Any] = {}
    for key, value in pairs:
        name = key.casefold()
        convert = _FIELDS.get(name)
        if convert is not None:
            decoded[name] = convert(value)
    return decoded


def parse_monitors_per_server_limit(raw: str | bytes | None) -> int:
    """The ``monitors_per_server_limit`` X of an account, or 2 when absent, invalid or ≤ 0."""
    if raw is None:
        return DEFAULT_ACCOUNT_LIMIT
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        limit = _decode(text).get("monitors_per_server_limit", 0)
    except (ValueError, UnicodeDecodeError):
        return DEFAULT_ACCOUNT_LIMIT
    return limit if limit > 0 else DEFAULT_ACCOUNT_LIMIT
