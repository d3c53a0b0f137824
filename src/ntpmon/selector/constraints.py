"""Constraint checks and account limits (spec/selector.md §5.2, §6).

Two modes share these checks: current-state evaluation before the rules (§6.4, §6.6, in
``evaluate``) and target-state checks whenever a rule tries a promotion (§6.3, §6.7). Every
check returns None for "ok" or a human-readable detail string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ntpmon.common.clock import as_utc
from ntpmon.selector.constants import CONSTRAINT_RECHECK, EXCESS_RECHECK
from ntpmon.selector.flags import parse_monitors_per_server_limit
from ntpmon.selector.network import (
    DIVERSITY_PREFIX,
    SUBNET_PREFIX,
    IpCache,
    ParsedIp,
    network_key,
    same_network,
)
from ntpmon.selector.types import (
    WORKING_SERVER,
    AccountLimit,
    GlobalStatus,
    MonitorCandidate,
    MonitorRow,
    PauseReason,
    ServerInfo,
    ServerStatus,
    Violation,
    ViolationType,
)

UNCHANGEABLE = frozenset({ViolationType.NETWORK_SAME_SUBNET, ViolationType.ACCOUNT})


# --- §6.1 same subnet -------------------------------------------------------------------


def check_same_subnet(
    monitor_ip: str, server_ip: str, *, cache: IpCache | None = None
) -> str | None:
    """A monitor inside the server's /24 (/48) would measure its own network."""
    if not monitor_ip or not server_ip:
        return None
    parse = (cache or IpCache()).parse
    mon, srv = parse(monitor_ip), parse(server_ip)
    if mon is None or srv is None:
        # Upstream reports a parse failure as a subnet violation (§12 Q10).
        bad = monitor_ip if mon is None else server_ip
        return f"invalid IP address {bad!r}"
    if mon[0] != srv[0]:
        return None
    if same_network(mon, srv, SUBNET_PREFIX):
        bits = SUBNET_PREFIX[mon[0]]
        return f"monitor {monitor_ip} is in the same /{bits} as server {server_ip}"
    return None


# --- §6.5 network diversity -----------------------------------------------------------------


@dataclass
class NetworkIndex:
    """The active/testing rows of a server grouped by their /20 (/44), built once per review.

    Equivalent to scanning the rows for each check (§6.5): a row conflicts with a monitor iff
    both addresses are of one family and share the diversity prefix.
    """

    rows: Sequence[MonitorRow]
    cache: IpCache = field(default_factory=IpCache)
    buckets: dict[tuple[int, int], list[int]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            if not row.monitor_ip or not row.status or row.status not in WORKING_SERVER:
                continue
            parsed = self.cache.parse(row.monitor_ip)
            if parsed is None:
                continue
            self.buckets.setdefault(network_key(parsed, DIVERSITY_PREFIX), []).append(row.id)

    def conflict(self, monitor_id: int, ip: ParsedIp) -> int | None:
        """The first other active/testing monitor in ``ip``'s network, if any."""
        for other in self.buckets.get(network_key(ip, DIVERSITY_PREFIX), ()):
            if other != monitor_id:
                return other
        return None


Existing = Sequence[MonitorRow] | NetworkIndex | None


def as_network_index(existing: Existing) -> NetworkIndex:
    if isinstance(existing, NetworkIndex):
        return existing
    return NetworkIndex(list(existing or ()))


def check_network_diversity(
    monitor_id: int, monitor_ip: str, existing: Existing, target: str
) -> str | None:
    """Two working monitors in one /20 (/44) see the server through the same network path."""
    if not monitor_ip:
        return None
    index = as_network_index(existing)
    parsed = index.cache.parse(monitor_ip)
    if parsed is None:
        return f"invalid monitor IP address {monitor_ip!r}"
    if target not in WORKING_SERVER:
        return None
    other = index.conflict(monitor_id, parsed)
    if other is None:
        return None
    bits = DIVERSITY_PREFIX[parsed[0]]
    return f"monitor {monitor_ip} shares a /{bits} with monitor {other}"


# --- §5.2 / §6.3 / §6.4 account limits ------------------------------------------------------


def _account_flags(rows: Sequence[MonitorRow]) -> dict[int, str | None]:
    """The flags of each account, from its first row (all rows of one account carry them)."""
    flags: dict[int, str | None] = {}
    for row in rows:
        if row.account_id is not None and row.account_id not in flags:
            flags[row.account_id] = row.account_flags
    return flags


def build_account_limits(rows: Sequence[MonitorRow]) -> dict[int, AccountLimit]:
    """Per-account counters of the server's active and testing monitors (§5.2)."""
    limits = {
        account: AccountLimit(account, parse_monitors_per_server_limit(raw))
        for account, raw in _account_flags(rows).items()
    }
    for row in rows:
        if row.account_id is None:
            continue
        if row.status == ServerStatus.ACTIVE:
            limits[row.account_id].active_count += 1
        elif row.status == ServerStatus.TESTING:
            limits[row.account_id].testing_count += 1
    return limits


def same_account(monitor: MonitorCandidate, server: ServerInfo) -> bool:
    return (
        monitor.account_id is not None
        and server.account_id is not None
        and monitor.account_id == server.account_id
    )


def check_account_constraints(
    monitor: MonitorCandidate,
    server: ServerInfo,
    limits: dict[int, AccountLimit],
    target: str,
) -> str | None:
    """Would ``monitor`` in ``target`` status break its account's per-server limit? (§6.3)

    The total test is a strict ``>`` on purpose (parity, §12 Q11).
    """
    if same_account(monitor, server):
        return f"monitor and server both belong to account {monitor.account_id}"
    if monitor.account_id is None:
        return None
    limit = limits.get(monitor.account_id)
    if limit is None:
        return f"account {monitor.account_id} has no limit information"
    x = limit.max_per_server
    active, testing = limit.active_count, limit.testing_count
    if monitor.server_status == ServerStatus.ACTIVE:
        active -= 1
    elif monitor.server_status == ServerStatus.TESTING:
        testing -= 1
    if target == ServerStatus.ACTIVE:
        if active >= x:
            return f"account {monitor.account_id} already has {active} active (limit {x})"
    elif target == ServerStatus.TESTING:
        if testing >= x + 1:
            return f"account {monitor.account_id} already has {testing} testing (limit {x + 1})"
    else:
        return None
    if active + testing > x + 1:
        return f"account {monitor.account_id} has {active + testing} active+testing (limit {x + 1})"
    return None


def _worst_first(group: list[MonitorRow]) -> list[MonitorRow]:
    """Upstream's exchange sort, reproduced exactly because it decides ties (§6.4)."""
    items = list(group)
    n = len(items)
    for i in range(n - 1):
        for j in range(i + 1, n):
            if _priority(items[i]) < _priority(items[j]):
                items[i], items[j] = items[j], items[i]
    return items


def _priority(row: MonitorRow) -> int:
    return row.monitor_priority if row.monitor_priority is not None else 0


def check_account_constraints_iterative(
    rows: Sequence[MonitorRow], server: ServerInfo | None = None, now: datetime | None = None
) -> dict[int, Violation]:
    """Flag only the worst excess monitors of each account and status (§6.4).

    ``server`` is unused, as upstream's. The active+testing total is not checked here.
    """
    groups: dict[int, dict[str, list[MonitorRow]]] = {}
    for row in rows:
        if row.account_id is None or row.status not in WORKING_SERVER:
            continue
        groups.setdefault(row.account_id, {}).setdefault(str(row.status), []).append(row)
    if not groups:
        return {}
    flags = _account_flags(rows)
    flagged: dict[int, Violation] = {}
    for account, by_status in groups.items():
        x = parse_monitors_per_server_limit(flags.get(account))
        for status, group in by_status.items():
            limit = x if status == ServerStatus.ACTIVE else x + 1
            excess = len(group) - limit
            if excess <= 0:
                continue
            for row in _worst_first(group)[:excess]:
                keep = (
                    row.constraint_violation_type == ViolationType.LIMIT
                    and row.constraint_violation_since is not None
                )
                flagged[row.id] = Violation(
                    ViolationType.LIMIT,
                    row.constraint_violation_since if keep else now,
                    f"account {account} has {len(group)} {status} monitors (limit {limit})",
                )
    return flagged


# --- §6.7 promotion-time checks -------------------------------------------------------------


def check_constraints(  # noqa: PLR0917 (positional: the spec's public signature)
    monitor: MonitorCandidate,
    server: ServerInfo,
    limits: dict[int, AccountLimit],
    target: str,
    existing: Existing,
    now: datetime | None = None,
) -> Violation:
    """Every constraint as if ``monitor`` already had ``target`` status."""
    index = as_network_index(existing)
    detail = check_same_subnet(monitor.ip, server.ip, cache=index.cache)
    if detail is not None:
        return Violation(ViolationType.NETWORK_SAME_SUBNET, now, detail)
    detail = check_account_constraints(monitor, server, limits, target)
    if detail is not None:
        # Classified by whether the account is known, even for "same account as server".
        vtype = ViolationType.LIMIT if monitor.account_id in limits else ViolationType.ACCOUNT
        return Violation(vtype, now, detail)
    detail = check_network_diversity(monitor.id, monitor.ip, index, target)
    if detail is not None:
        return Violation(ViolationType.NETWORK_DIVERSITY, now, detail)
    return Violation(ViolationType.NONE)


def can_promote_to_active(
    monitor: MonitorCandidate,
    server: ServerInfo,
    limits: dict[int, AccountLimit],
    existing: Existing,
    emergency: bool,
) -> bool:
    """Only globally active, healthy monitors become active; an emergency skips constraints."""
    if monitor.global_status != GlobalStatus.ACTIVE:
        return False
    if monitor.has_metrics and not monitor.is_healthy:
        return False
    if emergency:
        return True
    return check_constraints(monitor, server, limits, ServerStatus.ACTIVE, existing).is_none


def can_promote_to_testing(
    monitor: MonitorCandidate,
    server: ServerInfo,
    limits: dict[int, AccountLimit],
    existing: Existing,
    emergency: bool,
) -> bool:
    """Globally active or testing monitors may be tested; no health check (§12 Q9)."""
    if monitor.global_status not in (GlobalStatus.ACTIVE, GlobalStatus.TESTING):
        return False
    if emergency:
        return True
    return check_constraints(monitor, server, limits, ServerStatus.TESTING, existing).is_none


def apply_limit_transition(
    limits: dict[int, AccountLimit], monitor: MonitorCandidate, from_status: str, to_status: str
) -> None:
    """Move ``monitor`` between the working counters of its account (§6.8)."""
    if monitor.account_id is None:
        return
    limit = limits.get(monitor.account_id)
    if limit is None:
        return
    if from_status == ServerStatus.ACTIVE:
        limit.active_count = max(0, limit.active_count - 1)
    elif from_status == ServerStatus.TESTING:
        limit.testing_count = max(0, limit.testing_count - 1)
    if to_status == ServerStatus.ACTIVE:
        limit.active_count += 1
    elif to_status == ServerStatus.TESTING:
        limit.testing_count += 1


# --- §6.9 resolution of paused monitors -----------------------------------------------------


def is_unchangeable(vtype: str | None) -> bool:
    """Violations the monitor cannot outgrow by itself: they pause it (§9.2)."""
    return vtype in UNCHANGEABLE


def stored_pause_reason(monitor: MonitorCandidate) -> str:
    """The stored pause reason; NULL means ``constraint`` (an empty string stays unknown)."""
    return PauseReason.CONSTRAINT if monitor.pause_reason is None else monitor.pause_reason


def should_check_constraint_resolution(
    monitor: MonitorCandidate, pause_reason: str | None, now: datetime | None
) -> bool:
    """Is a paused monitor due for a re-check? Unknown reasons are never re-checked (Q16)."""
    if monitor.server_status != ServerStatus.PAUSED:
        return False
    if monitor.last_constraint_check is None:
        return True
    if now is None:
        raise ValueError(f"monitor {monitor.id}: a time is needed to check its pause")
    elapsed = as_utc(now) - as_utc(monitor.last_constraint_check)
    if pause_reason == PauseReason.CONSTRAINT:
        return elapsed > CONSTRAINT_RECHECK
    if pause_reason == PauseReason.EXCESS:
        return elapsed > EXCESS_RECHECK
    return False


def check_constraint_resolution(monitor: MonitorCandidate, server: ServerInfo) -> bool:
    """Has the stored violation of a paused monitor gone away?"""
    if monitor.server_status != ServerStatus.PAUSED:
        return False
    stored = monitor.constraint_violation_type
    if not stored or not is_unchangeable(stored):
        return True
    if stored == ViolationType.NETWORK_SAME_SUBNET:
        return check_same_subnet(monitor.ip, server.ip) is None
    return not same_account(monitor, server)
