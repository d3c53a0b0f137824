"""Plain data the selector works on (spec/selector.md §13): enums with the DB spellings and
dataclasses for monitors, constraints and planned changes. No behaviour beyond tiny helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ntpmon.db import models
from ntpmon.selector.constants import TARGET_ACTIVE

# The DB spellings are defined once, in ntpmon.db.models (plain enums, no I/O).
GlobalStatus = models.MonitorStatus  # monitors.status: the monitor's standing in the whole pool
ServerStatus = models.ServerScoreStatus  # server_scores.status: the monitor's role for one server
PauseReason = models.PauseReason  # server_scores.pause_reason
MonitorRow = models.MonitorRow  # one row of the monitor-priority query (§2.2)


class CandidateState(StrEnum):
    """What the rules should do with a monitor (§7)."""

    UNKNOWN = "unknown"
    IN = "in"
    OUT = "out"
    BLOCK = "block"
    PENDING = "pending"


class ViolationType(StrEnum):
    """Constraint violation kinds; the values are stored in ``constraint_violation_type``."""

    NONE = ""
    NETWORK_SAME_SUBNET = "network_same_subnet"
    ACCOUNT = "account"
    LIMIT = "limit"
    NETWORK_DIVERSITY = "network_diversity"


LIVE_GLOBAL = frozenset({GlobalStatus.ACTIVE, GlobalStatus.TESTING})
WORKING_SERVER = frozenset({ServerStatus.ACTIVE, ServerStatus.TESTING})


@dataclass(frozen=True, slots=True)
class Violation:
    """A constraint violation; ``type`` NONE means "no violation"."""

    type: ViolationType
    since: datetime | None = None
    details: str = ""

    @property
    def is_none(self) -> bool:
        return self.type == ViolationType.NONE


NO_VIOLATION = Violation(ViolationType.NONE)


def has_violation(violation: Violation | None) -> bool:
    """None and a NONE-typed violation both mean "clean" (tests pass monitors without one)."""
    return violation is not None and violation.type != ViolationType.NONE


@dataclass(slots=True)
class MonitorCandidate:
    """A monitor as the rules see it (§4)."""

    id: int
    global_status: str
    server_status: str
    account_id: int | None = None
    ip: str = ""
    has_metrics: bool = False
    is_healthy: bool = False
    rtt: float = 0.0
    priority: int = 0
    count: int = 0
    id_token: str = ""
    tls_name: str = ""
    constraint_violation_type: str | None = None
    constraint_violation_since: datetime | None = None
    last_constraint_check: datetime | None = None
    pause_reason: str | None = None


@dataclass(slots=True)
class EvaluatedMonitor:
    monitor: MonitorCandidate
    violation: Violation | None
    state: CandidateState


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: int
    account_id: int | None = None
    ip: str = ""
    ip_version: str = ""


@dataclass(slots=True)
class AccountLimit:
    """Per-server counters of one account's monitors; mutated as a run promotes monitors."""

    account_id: int
    max_per_server: int
    active_count: int = 0
    testing_count: int = 0


@dataclass(frozen=True, slots=True, order=True)
class StatusChange:
    monitor_id: int
    from_status: ServerStatus
    to_status: ServerStatus
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeLimits:
    """How many changes of each kind one run may make (§8.0 step 3)."""

    active_removals: int
    testing_removals: int
    promotions: int


@dataclass
class SelectionContext:
    """What every rule needs besides its monitor lists."""

    server: ServerInfo
    account_limits: dict[int, AccountLimit]
    assigned: Any  # the run's rows (Sequence[MonitorRow]), or their NetworkIndex, or None
    limits: ChangeLimits
    target: int = TARGET_ACTIVE
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class RuleResult:
    changes: list[StatusChange]
    active_count: int
    testing_count: int


# Database writes of a plan (§9), in the order they must run. ``phase`` is not part of
# equality: it only tells the adapter which failure policy applies (§9.1 vs §9.2/§9.3).
@dataclass(frozen=True, slots=True)
class SetStatus:
    monitor_id: int
    status: ServerStatus
    phase: str = field(default="change", compare=False)


@dataclass(frozen=True, slots=True)
class SetViolation:
    monitor_id: int
    type: ViolationType
    since: datetime


@dataclass(frozen=True, slots=True)
class ClearViolation:
    monitor_id: int


@dataclass(frozen=True, slots=True)
class SetPauseReason:
    monitor_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class TouchLastCheck:
    monitor_id: int


Write = SetStatus | SetViolation | ClearViolation | SetPauseReason | TouchLastCheck


@dataclass(frozen=True, slots=True)
class ServerPlan:
    """Everything one review of a server decides, as data (§1.1 steps 3–9)."""

    server: ServerInfo
    evaluated: list[EvaluatedMonitor]
    status_changes: list[StatusChange]
    writes: list[Write]

    @property
    def changed(self) -> bool:
        """True iff there are status changes (assuming every write succeeds)."""
        return bool(self.status_changes)
