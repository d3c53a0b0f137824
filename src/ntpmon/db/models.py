"""Row shapes and enumerations (spec/database.md §2.5, §12.2).

Datetimes are returned as naive UTC, exactly as stored; convert with
``ntpmon.common.clock.from_db`` where an aware value is wanted.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Row

T = TypeVar("T")


class MonitorType(StrEnum):
    MONITOR = "monitor"
    SCORE = "score"


class MonitorStatus(StrEnum):
    PENDING = "pending"
    TESTING = "testing"
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"

    @property
    def is_live(self) -> bool:
        return self in (MonitorStatus.TESTING, MonitorStatus.ACTIVE)


class IpVersion(StrEnum):
    V4 = "v4"
    V6 = "v6"


class ServerScoreStatus(StrEnum):
    CANDIDATE = "candidate"
    TESTING = "testing"
    ACTIVE = "active"
    PAUSED = "paused"


class ConstraintViolationType(StrEnum):
    NETWORK_SAME_SUBNET = "network_same_subnet"
    ACCOUNT = "account"
    LIMIT = "limit"
    NETWORK_DIVERSITY = "network_diversity"


class PauseReason(StrEnum):
    CONSTRAINT = "constraint"
    EXCESS = "excess"


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    id: int
    id_token: str | None
    name: str | None
    organization_name: str | None
    organization_url: str | None
    public_profile: int
    url_slug: str | None
    flags: str | None
    created_on: datetime
    modified_on: datetime
    stripe_customer_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Monitor:
    id: int
    id_token: str | None
    type: str
    user_id: int | None
    account_id: int | None
    hostname: str
    location: str
    ip: str | None
    ip_version: str | None
    tls_name: str | None
    api_key: str | None
    status: str
    config: str
    client_version: str
    last_seen: datetime | None
    last_submit: datetime | None
    created_on: datetime
    deleted_on: datetime | None
    is_current: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    id: int
    ip: str
    ip_version: str
    user_id: int | None
    account_id: int | None
    hostname: str | None
    stratum: int | None
    in_pool: int
    in_server_list: int
    netspeed: int
    netspeed_target: int
    created_on: datetime
    updated_on: datetime
    score_ts: datetime | None
    score_raw: float
    deletion_on: date | None
    flags: str


@dataclasses.dataclass(frozen=True, slots=True)
class ServerScore:
    id: int
    monitor_id: int
    server_id: int
    score_ts: datetime | None
    score_raw: float
    stratum: int | None
    status: str
    queue_ts: datetime | None
    created_on: datetime
    modified_on: datetime
    constraint_violation_type: str | None
    constraint_violation_since: datetime | None
    last_constraint_check: datetime | None
    pause_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class LogScore:
    id: int
    monitor_id: int | None
    server_id: int
    ts: datetime
    score: float
    step: float
    offset: float | None
    rtt: int | None
    attributes: str | None


def from_row(cls: type[T], row: Row[Any] | Any, prefix: str = "") -> T:
    """Build a row dataclass from a result row; ``prefix`` selects aliased join columns."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: mapping[prefix + name] for name in names})


# The selector's look-back window and review batch (spec/selector.md §3); its queries use them.
LOOKBACK = timedelta(hours=24)
REVIEW_BATCH = 10


@dataclasses.dataclass(slots=True)
class MonitorRow:
    """One row of the monitor-priority query (§2.2), already converted to Python types."""

    id: int
    monitor_ip: str | None = None
    status: str | None = None
    monitor_status: str = MonitorStatus.ACTIVE
    account_id: int | None = None
    id_token: str | None = None
    tls_name: str | None = None
    avg_rtt: float | None = None
    monitor_priority: int | None = 0
    avg_step: float = 1.0
    healthy: bool = True
    count: int = 0
    account_flags: str | None = None
    constraint_violation_type: str | None = None
    constraint_violation_since: datetime | None = None
    last_constraint_check: datetime | None = None
    pause_reason: str | None = None
