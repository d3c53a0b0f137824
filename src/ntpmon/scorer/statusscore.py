"""The per-measurement "status score" (spec/scorer.md §3), shared by monitor-api and the scorer.

A pure function of one measurement: which step it earns, the optional ceiling, and the values
its ``log_scores`` row carries. The API applies it to every submitted result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

NS_PER_S = 1_000_000_000
DECAY = 0.95
UNTRUSTED_ZERO_OFFSET = "untrusted zero offset"
UNEXPECTED_STRATUM_0 = "unexpected stratum 0"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One ``ServerStatus`` as the scorer sees it; durations in integral nanoseconds."""

    ts: datetime
    offset_ns: int | None
    rtt_ns: int | None = None
    stratum: int = 0
    leap: int = 0
    error: str = ""
    no_response: bool = False


@dataclass(frozen=True, slots=True)
class StatusScore:
    """The outcome of scoring one measurement."""

    step: float
    max_score: float | None
    offset_s: float | None
    rtt_us: int
    error: str
    leap: int
    ts: datetime

    @property
    def attributes(self) -> str | None:
        """``{"leap":L,"error":"E"}`` with empty members omitted; None when both are empty."""
        doc: dict[str, object] = {}
        if self.leap > 0:
            doc["leap"] = self.leap
        if self.error:
            doc["error"] = self.error
        return json.dumps(doc, separators=(",", ":")) if doc else None

    def accumulate(self, old_score: float) -> float:
        """The running score after this step: ``old * 0.95 + step``, capped by the ceiling."""
        new = old_score * DECAY + self.step
        return min(new, self.max_score) if self.max_score is not None else new


def duration_seconds(ns: int) -> float:
    """Go's ``Duration.Seconds()``: whole and fractional parts converted separately."""
    whole, frac = divmod(abs(ns), NS_PER_S)
    value = float(whole) + float(frac) / 1e9
    return -value if ns < 0 else value


def offset_step(abs_offset_ns: int) -> float:
    """Rules 7-9: the step earned by an offset below the 3 s limit."""
    if abs_offset_ns > 750_000_000:
        return -2.0
    if abs_offset_ns > 25_000_000:
        offset_s = duration_seconds(abs_offset_ns)
        step = -6.667 * offset_s + 1.167 if offset_s <= 0.100 else -2.308 * offset_s + 0.731
        return min(step, 1.0)
    return 1.0


def _step(m: Measurement) -> tuple[float, float | None, str]:
    """Rules 1-9 in order; returns (step, ceiling, error text after rule 4's rewrite)."""
    error = m.error
    if m.no_response:
        return -5.0, None, error
    if m.stratum == 0:
        if error == "RATE":
            return -3.5, None, error
        if error in ("RSTR", "DENY"):
            return -10.0, -50.0, error
        if error in ("", UNTRUSTED_ZERO_OFFSET):
            return -2.0, 5.0, error or UNEXPECTED_STRATUM_0
    if error or m.offset_ns is None:
        return -4.0, None, error
    abs_offset = abs(m.offset_ns)
    if abs_offset > 3 * NS_PER_S:
        return -4.0, -20.0, error
    if m.stratum >= 8:
        return -4.0, None, error
    return offset_step(abs_offset), None, error


def score(m: Measurement) -> StatusScore:
    """Score one measurement (spec/scorer.md §3.2-3.3)."""
    step, ceiling, error = _step(m)
    offset_s = duration_seconds(m.offset_ns) if m.offset_ns is not None else None
    rtt = m.rtt_ns or 0
    rtt_us = -(-rtt // 1000) if rtt < 0 else rtt // 1000  # truncated toward zero
    return StatusScore(
        step=step,
        max_score=ceiling,
        offset_s=offset_s,
        rtt_us=rtt_us,
        error=error,
        leap=m.leap,
        ts=m.ts,
    )


def legacy_zero_offset(m: Measurement) -> Measurement:
    """Clients older than v3.8.5 sent stratum 0 with offset 0 for failures: distrust it."""
    if m.stratum == 0 and m.offset_ns == 0 and not m.error:
        return Measurement(
            ts=m.ts,
            offset_ns=None,
            rtt_ns=m.rtt_ns,
            stratum=m.stratum,
            leap=m.leap,
            error=UNTRUSTED_ZERO_OFFSET,
            no_response=m.no_response,
        )
    return m
