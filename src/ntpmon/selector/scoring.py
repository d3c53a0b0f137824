"""Performance comparison and reason texts shared by the rules (spec/selector.md §8.6, §8.10)."""

from __future__ import annotations

from collections.abc import Sequence

from ntpmon.selector.types import LIVE_GLOBAL, EvaluatedMonitor, MonitorCandidate, ServerStatus

OUTPERFORM_MIN_PERCENT = -5.0
OUTPERFORM_MIN_POINTS = -5

EMERGENCY_ACTIVE = "emergency promotion: zero active monitors"
EMERGENCY_TESTING = "emergency promotion to testing: zero active monitors"
BOOTSTRAP_EMERGENCY_ACTIVE = "bootstrap emergency promotion: zero active monitors"
BOOTSTRAP_EMERGENCY_TESTING = "bootstrap emergency promotion to testing: zero active monitors"


def _candidate(m: MonitorCandidate | EvaluatedMonitor) -> MonitorCandidate:
    return m.monitor if isinstance(m, EvaluatedMonitor) else m


def outperforms(
    better: MonitorCandidate | EvaluatedMonitor, worse: MonitorCandidate | EvaluatedMonitor
) -> bool:
    """Is ``better`` clearly better: healthy over unhealthy, else ≥5 % and ≥5 points lower?"""
    b, w = _candidate(better), _candidate(worse)
    if b.is_healthy and not w.is_healthy:
        return True
    if not b.is_healthy and w.is_healthy:
        return False
    diff = b.priority - w.priority
    if w.priority == 0:
        return b.priority < 0 and diff <= OUTPERFORM_MIN_POINTS  # pct is ∓100 %
    pct = diff / w.priority * 100
    return pct <= OUTPERFORM_MIN_PERCENT and diff <= OUTPERFORM_MIN_POINTS


def emergency_reason(base: str, to_status: str, bootstrap: bool) -> str:
    """The reason text of a promotion made while the server has no active monitor."""
    if to_status == ServerStatus.ACTIVE:
        return BOOTSTRAP_EMERGENCY_ACTIVE if bootstrap else EMERGENCY_ACTIVE
    if to_status == ServerStatus.TESTING:
        return BOOTSTRAP_EMERGENCY_TESTING if bootstrap else EMERGENCY_TESTING
    return base


def split_bootstrap_candidates(
    candidates: Sequence[EvaluatedMonitor],
) -> tuple[list[EvaluatedMonitor], list[EvaluatedMonitor]]:
    """Live candidates split into healthy and the rest, each in list order (§8.10)."""
    healthy: list[EvaluatedMonitor] = []
    other: list[EvaluatedMonitor] = []
    for em in candidates:
        if em.monitor.global_status not in LIVE_GLOBAL:
            continue
        (healthy if em.monitor.is_healthy else other).append(em)
    return healthy, other
