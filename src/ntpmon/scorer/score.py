"""The row a scorer computes, and the ``log_scores.attributes`` JSON (spec/scorer.md §2, §6.3).

Attributes are decoded the way Go's ``encoding/json`` fills upstream's struct (unknown keys
dropped, wrong types rejected, keys matched case-insensitively) and encoded byte for byte as
Go does (fixed key order, zero values omitted, ``<``/``>``/``&`` and U+2028/9 escaped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ntpmon.scorer.errors import ScoringError

ATTRIBUTE_TYPES: tuple[tuple[str, type], ...] = (
    ("leap", int),
    ("stratum", int),
    ("no_response", bool),
    ("error", str),
    ("warning", str),
    ("from_ls_id", int),
    ("from_ss_id", int),
)
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class AttributesError(ScoringError, ValueError):
    """Stored attributes that upstream's JSON decoding would reject."""


@dataclass(frozen=True, slots=True)
class Score:
    """One computed score: a ``log_scores`` row owned by a scorer."""

    server_id: int
    monitor_id: int
    ts: datetime
    step: float
    score: float
    offset: float | None
    rtt: int | None
    attributes: str | None


def _typed(name: str, kind: type, value: Any) -> Any:
    if value is None:  # JSON null leaves Go's zero value
        return kind()
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AttributesError(f"json: cannot unmarshal {value!r} into attribute {name} (int)")
        return value
    if not isinstance(value, kind):
        kind_name = kind.__name__
        raise AttributesError(
            f"json: cannot unmarshal {value!r} into attribute {name} ({kind_name})"
        )
    return value


def decode_attributes(text: str | None) -> dict[str, Any]:
    """The known attributes of a stored row; NULL means none. Raises :class:`AttributesError`."""
    if text is None:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AttributesError(f"invalid attributes JSON: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise AttributesError(f"attributes are not a JSON object: {text[:40]!r}")
    out: dict[str, Any] = {}
    types = dict(ATTRIBUTE_TYPES)
    folded = {name.casefold(): name for name in types}
    for key, value in doc.items():
        name = key if key in types else folded.get(key.casefold())
        if name is not None:
            out[name] = _typed(name, types[name], value)
    return out


def _go_json_string(value: str) -> str:
    encoded = json.dumps(value, ensure_ascii=False)
    return "".join(_GO_ESCAPES.get(c, c) for c in encoded)


def encode_attributes(attrs: dict[str, Any]) -> str:
    """Compact JSON in the fixed key order, omitting zero and empty members."""
    parts: list[str] = []
    for name, kind in ATTRIBUTE_TYPES:
        value = attrs.get(name)
        if not value:
            continue
        if kind is str:
            rendered = _go_json_string(value)
        elif kind is bool:
            rendered = "true"
        else:
            rendered = str(int(value))
        parts.append(f'"{name}":{rendered}')
    return "{" + ",".join(parts) + "}"
