"""The selection rules (spec/selector.md §8): evaluated monitors in → ordered status changes out.

Rules run in upstream's order 1, 2, 1.5, 3, 5, 2.5, 7, 6 and may touch one monitor more than
once; the quirks this produces are deliberate parity (§12) and must not be "fixed" here.
Rule functions return only their own changes and working counts; ``working_limits`` is
mutated in place (as upstream) so callers can chain rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ntpmon.selector.constants import (
    ACTIVE_SAFE_THRESHOLD,
    BASE_CHANGE_LIMIT,
    BLOCKED_CHANGE_LIMIT,
    BOOTSTRAP_PROMOTIONS,
    EMERGENCY_CHANGE_LIMIT,
    MAX_CAPACITY_PROMOTIONS,
    MIN_COUNT_FOR_ACTIVE,
    MIN_COUNT_FOR_TESTING,
    RULE7_MAX_UNPAUSE,
    TARGET_ACTIVE,
    TESTING_SAFE_THRESHOLD,
    dynamic_testing_target,
)
from ntpmon.selector.constraints import (
    NetworkIndex,
    apply_limit_transition,
    as_network_index,
    can_promote_to_active,
    can_promote_to_testing,
    check_constraint_resolution,
    should_check_constraint_resolution,
    stored_pause_reason,
)
from ntpmon.selector.scoring import emergency_reason, outperforms, split_bootstrap_candidates
from ntpmon.selector.types import (
    LIVE_GLOBAL,
    AccountLimit,
    CandidateState,
    ChangeLimits,
    EvaluatedMonitor,
    MonitorRow,
    RuleResult,
    SelectionContext,
    ServerInfo,
    ServerStatus,
    StatusChange,
    has_violation,
)

A, T, C, P = (
    ServerStatus.ACTIVE,
    ServerStatus.TESTING,
    ServerStatus.CANDIDATE,
    ServerStatus.PAUSED,
)

REASON_BLOCKED = "blocked by constraints or global status"
REASON_GRADUAL = "gradual removal (health or constraints)"
REASON_EXCESS_ACTIVE = "excess active demotion"
REASON_PROMOTE_ACTIVE = "promotion to active"
REASON_CANDIDATE_TESTING = "candidate to testing"
REASON_UNPAUSE = "constraint resolution: unpausing resolved constraint"
REASON_BOOTSTRAP_HEALTHY = "bootstrap: promoting healthy candidate"
REASON_BOOTSTRAP_OTHER = "bootstrap: promoting candidate"


def excess_testing_reason(working_testing: int, target: int) -> str:
    return f"excess testing monitors ({working_testing} > target {target})"


@dataclass(frozen=True, slots=True)
class ReplacementKind:
    """The two swap flavours of the replacement procedure (§8.5)."""

    replacer_from: ServerStatus
    replacer_to: ServerStatus
    target_to: ServerStatus
    promote_reason: str
    demote_reason: str
    cost: int
    min_count: int


TESTING_TO_ACTIVE = ReplacementKind(
    T,
    A,
    T,
    "active-testing swap (promote)",
    "active-testing swap (demote)",
    2,
    MIN_COUNT_FOR_ACTIVE,
)
CANDIDATE_TO_TESTING = ReplacementKind(
    C, T, C, "replacement promotion", "replaced by better candidate", 1, MIN_COUNT_FOR_TESTING
)


def calculate_change_limits(active_count: int, blocked_count: int) -> ChangeLimits:
    """Budgets of one run: 2, 3 with several blocked monitors, 4 with no active monitor."""
    base = BASE_CHANGE_LIMIT
    if blocked_count > 1:
        base = BLOCKED_CHANGE_LIMIT
    if active_count == 0:
        base = EMERGENCY_CHANGE_LIMIT
    return ChangeLimits(active_removals=base, testing_removals=base, promotions=base)


def _is_out(em: EvaluatedMonitor) -> bool:
    return em.state == CandidateState.OUT


def _index(ctx: SelectionContext) -> NetworkIndex:
    """The diversity index of the run's rows (``select_changes`` builds it once per run)."""
    return as_network_index(ctx.assigned)


def attempt_promotion(  # noqa: PLR0917 (positional: the spec's public signature)
    ctx: SelectionContext,
    em: EvaluatedMonitor,
    from_status: ServerStatus,
    to_status: ServerStatus,
    base_reason: str,
    working_limits: dict[int, AccountLimit],
    *,
    emergency: bool | None = None,
    bootstrap: bool = False,
) -> StatusChange | None:
    """Promote ``em`` if the target-state checks allow it, updating ``working_limits``."""
    emergency = ctx.emergency if emergency is None else emergency
    check = can_promote_to_active if to_status == A else can_promote_to_testing
    if not check(em.monitor, ctx.server, working_limits, _index(ctx), emergency):
        return None
    reason = emergency_reason(base_reason, to_status, bootstrap) if emergency else base_reason
    apply_limit_transition(working_limits, em.monitor, from_status, to_status)
    return StatusChange(em.monitor.id, from_status, to_status, reason)


# --- Rule 1 -----------------------------------------------------------------------------


def rule1_immediate_blocking(
    ctx: SelectionContext, active: Sequence[EvaluatedMonitor], testing: Sequence[EvaluatedMonitor]
) -> list[StatusChange]:
    """Globally paused/deleted monitors leave active and testing at once, without budget."""
    changes = [
        StatusChange(em.monitor.id, A, C, REASON_BLOCKED)
        for em in active
        if em.state == CandidateState.BLOCK
    ]
    changes += [
        StatusChange(em.monitor.id, T, C, REASON_BLOCKED)
        for em in testing
        if em.state == CandidateState.BLOCK
    ]
    return changes


# --- Rule 2 -----------------------------------------------------------------------------


def _process_removals(
    monitors: Sequence[EvaluatedMonitor],
    *,
    from_status: ServerStatus,
    to_status: ServerStatus,
    current: int,
    safe: int,
    limit: int,
    testing_pass: bool,
    active_count: int,
) -> list[StatusChange]:
    out = [em for em in monitors if _is_out(em)]
    cv = sum(1 for em in out if has_violation(em.violation))
    perf = len(out) - cv
    if cv + perf == 0:
        return []
    skip_perf = current - cv <= safe and perf > 0
    if testing_pass and active_count == 0 and current > safe:
        allowed = min(cv + perf, limit, current - safe)
    elif cv == 0 and (current <= safe or skip_perf):
        allowed = 0
    elif cv > 0 and (current <= safe or skip_perf):
        allowed = min(limit, cv)
    else:
        allowed = min(limit, current - safe)
    changes: list[StatusChange] = []
    for em in reversed(monitors):
        if len(changes) >= allowed:
            break
        if not _is_out(em) or (skip_perf and not has_violation(em.violation)):
            continue
        changes.append(StatusChange(em.monitor.id, from_status, to_status, REASON_GRADUAL))
    return changes


def rule2_gradual_removal(
    ctx: SelectionContext,
    active: Sequence[EvaluatedMonitor],
    testing: Sequence[EvaluatedMonitor],
    current_active: int,
) -> list[StatusChange]:
    """OUT monitors leave step by step, never taking a group below its safe size for mere
    performance; constraint violations may go lower."""
    active_changes = _process_removals(
        active,
        from_status=A,
        to_status=T,
        current=current_active,
        safe=ACTIVE_SAFE_THRESHOLD,
        limit=ctx.limits.active_removals,
        testing_pass=False,
        active_count=current_active,
    )
    demoted_to_testing = sum(1 for c in active_changes if c.to_status == T)
    testing_changes = _process_removals(
        testing,
        from_status=T,
        to_status=C,
        current=len(testing) + demoted_to_testing,
        safe=TESTING_SAFE_THRESHOLD,
        limit=ctx.limits.testing_removals,
        testing_pass=True,
        active_count=current_active,
    )
    return active_changes + testing_changes


# --- Rule 1.5 ---------------------------------------------------------------------------


def rule1_5_active_excess(
    ctx: SelectionContext,
    active: Sequence[EvaluatedMonitor],
    working_active: int,
    working_testing: int,
    demotions_so_far: int,
) -> RuleResult:
    """Demote actives above the target from the tail of the list, keeping budget for OUTs."""
    wa, wt = working_active, working_testing
    budget = ctx.limits.active_removals
    if not (wa > ctx.target and wa > 1 and not ctx.emergency and budget > demotions_so_far):
        return RuleResult([], wa, wt)
    excess = wa - ctx.target
    reserve_need = sum(1 for em in active if _is_out(em))
    reserved = min(reserve_need, budget - demotions_so_far)
    available = max(0, budget - demotions_so_far - reserved)
    n = min(excess, available)
    changes: list[StatusChange] = []
    if n > 0:
        for em in active[-n:]:
            if _is_out(em):  # quirk Q3: OUTs in the window reduce the demotions
                continue
            changes.append(StatusChange(em.monitor.id, A, T, REASON_EXCESS_ACTIVE))
            wa -= 1
            wt += 1
    return RuleResult(changes, wa, wt)


# --- replacement procedure (Rule 3 phase 2, Rule 5 phase 2) ---------------------------


def copy_limits(limits: dict[int, AccountLimit]) -> dict[int, AccountLimit]:
    """An independent copy of a working-limits map."""
    return {
        k: AccountLimit(v.account_id, v.max_per_server, v.active_count, v.testing_count)
        for k, v in limits.items()
    }


def _trial_limits(
    limits: dict[int, AccountLimit], *monitors: EvaluatedMonitor
) -> dict[int, AccountLimit]:
    """A copy-on-write view for one swap attempt: only the accounts of the two monitors
    involved can change, so only they are copied (equal to copying the whole map)."""
    trial = dict(limits)
    for em in monitors:
        account = em.monitor.account_id
        if account is not None and account in limits:
            trial[account] = copy_limits({account: limits[account]})[account]
    return trial


def attempt_performance_replacement(  # noqa: PLR0917 (positional: the spec's public signature)
    ctx: SelectionContext,
    replacers: Sequence[EvaluatedMonitor],
    targets: Sequence[EvaluatedMonitor],
    working_limits: dict[int, AccountLimit],
    budget: int,
    kind: ReplacementKind,
) -> list[StatusChange]:
    """Swap clearly better replacers in for the worst targets, within ``budget`` (§8.5)."""
    eligible_targets = [em for em in targets if not _is_out(em) and not has_violation(em.violation)]
    if not eligible_targets:
        return []
    eligible_replacers = [em for em in replacers if em.monitor.global_status in LIVE_GLOBAL]
    if not eligible_replacers:
        return []
    changes: list[StatusChange] = []
    swaps = 0
    for target in reversed(eligible_targets):
        if swaps * kind.cost >= budget:
            break
        for replacer in eligible_replacers:
            if not outperforms(replacer, target):
                break  # replacers are best-first (§12 Q20)
            if replacer.monitor.count < kind.min_count:
                continue
            trial = _trial_limits(working_limits, target, replacer)
            apply_limit_transition(trial, target.monitor, kind.replacer_to, kind.target_to)
            promotion = attempt_promotion(
                ctx, replacer, kind.replacer_from, kind.replacer_to, kind.promote_reason, trial
            )
            if promotion is None:
                continue
            changes.append(
                StatusChange(
                    target.monitor.id, kind.replacer_to, kind.target_to, kind.demote_reason
                )
            )
            changes.append(
                StatusChange(
                    replacer.monitor.id, kind.replacer_from, kind.replacer_to, kind.promote_reason
                )
            )
            apply_limit_transition(working_limits, target.monitor, kind.replacer_to, kind.target_to)
            apply_limit_transition(
                working_limits, replacer.monitor, kind.replacer_from, kind.replacer_to
            )
            eligible_replacers.remove(replacer)
            swaps += 1
            break
    return changes


def _promote_in_order(  # noqa: PLR0917
    ctx: SelectionContext,
    monitors: Sequence[EvaluatedMonitor],
    needed: int,
    kind: ReplacementKind,
    reason: str,
    working_limits: dict[int, AccountLimit],
) -> list[StatusChange]:
    """Walk ``monitors`` best first until ``needed`` promotions succeeded (Rules 3 and 5,
    phase 1). Monitors with too few data points are skipped; the promotion check decides the
    rest (it also refuses monitors that are not globally active/testing)."""
    changes: list[StatusChange] = []
    for em in monitors:
        if len(changes) >= needed:
            break
        if em.monitor.count < kind.min_count:
            continue
        change = attempt_promotion(
            ctx, em, kind.replacer_from, kind.replacer_to, reason, working_limits
        )
        if change is not None:
            changes.append(change)
    return changes


# --- Rule 3 -----------------------------------------------------------------------------


def rule3_testing_to_active(  # noqa: PLR0917 (positional: the spec's public signature)
    ctx: SelectionContext,
    testing: Sequence[EvaluatedMonitor],
    active: Sequence[EvaluatedMonitor],
    working_limits: dict[int, AccountLimit],
    working_active: int,
    working_testing: int,
) -> RuleResult:
    """Fill the active gap from testing, then swap in clearly better testing monitors."""
    wa, wt = working_active, working_testing
    budget = ctx.limits.promotions
    changes: list[StatusChange] = []
    to_add = max(0, ctx.target - wa)
    if to_add > 0 and budget > 0:
        changes = _promote_in_order(
            ctx,
            testing,
            min(to_add, budget),
            TESTING_TO_ACTIVE,
            REASON_PROMOTE_ACTIVE,
            working_limits,
        )
        wa += len(changes)
        wt -= len(changes)
    swap_budget = budget - len(changes)
    if swap_budget > 0 and testing and active:
        changes += attempt_performance_replacement(
            ctx, testing, active, working_limits, swap_budget, TESTING_TO_ACTIVE
        )
    return RuleResult(changes, wa, wt)


# --- Rule 5 -----------------------------------------------------------------------------


def rule5_candidate_to_testing(  # noqa: PLR0917 (positional: the spec's public signature)
    ctx: SelectionContext,
    candidates: Sequence[EvaluatedMonitor],
    testing: Sequence[EvaluatedMonitor],
    working_limits: dict[int, AccountLimit],
    working_active: int,
    working_testing: int,
) -> RuleResult:
    """Fill testing capacity from candidates (at most 2), then replace weak testing monitors."""
    wa, wt = working_active, working_testing
    budget = ctx.limits.promotions
    if budget <= 0 or not candidates:
        return RuleResult([], wa, wt)
    capacity = max(0, dynamic_testing_target(wa) - wt)
    needed = min(budget, MAX_CAPACITY_PROMOTIONS, capacity)
    changes = _promote_in_order(
        ctx, candidates, needed, CANDIDATE_TO_TESTING, REASON_CANDIDATE_TESTING, working_limits
    )
    wt += len(changes)
    replace_budget = budget - len(changes)
    if replace_budget > 0 and candidates and testing:
        # Candidates promoted above stay eligible as replacers (§12 Q5).
        changes += attempt_performance_replacement(
            ctx, candidates, testing, working_limits, replace_budget, CANDIDATE_TO_TESTING
        )
    return RuleResult(changes, wa, wt)


# --- Rule 2.5 ---------------------------------------------------------------------------


def rule2_5_testing_pool(
    ctx: SelectionContext,
    testing: Sequence[EvaluatedMonitor],
    working_active: int,
    working_testing: int,
    prior_changes: Sequence[StatusChange],
) -> RuleResult:
    """Trim the testing pool to its dynamic target from the tail, within the removal budget."""
    wa, wt = working_active, working_testing
    target = dynamic_testing_target(wa)
    if wt <= target:
        return RuleResult([], wa, wt)
    excess = wt - target
    so_far = sum(1 for c in prior_changes if c.from_status == T and c.to_status == C)
    n = min(excess, max(0, ctx.limits.testing_removals - so_far))
    changes: list[StatusChange] = []
    for em in reversed(testing):
        if len(changes) >= n:
            break
        if _is_out(em) or has_violation(em.violation):
            continue
        changes.append(StatusChange(em.monitor.id, T, C, excess_testing_reason(wt, target)))
        wt -= 1
    return RuleResult(changes, wa, wt)


# --- Rule 7 -----------------------------------------------------------------------------


def rule7_constraint_resolution(
    ctx: SelectionContext, paused: Sequence[EvaluatedMonitor], now: datetime | None
) -> list[StatusChange]:
    """Unpause at most two paused monitors whose constraint has gone away."""
    changes: list[StatusChange] = []
    for em in paused:
        reason = stored_pause_reason(em.monitor)
        if should_check_constraint_resolution(
            em.monitor, reason, now
        ) and check_constraint_resolution(em.monitor, ctx.server):
            changes.append(StatusChange(em.monitor.id, P, C, REASON_UNPAUSE))
            if len(changes) >= RULE7_MAX_UNPAUSE:
                break
    return changes


# --- Rule 6 -----------------------------------------------------------------------------


def rule6_bootstrap(  # noqa: PLR0917 (positional: the spec's public signature)
    ctx: SelectionContext,
    testing: Sequence[EvaluatedMonitor],
    candidates: Sequence[EvaluatedMonitor],
    working_limits: dict[int, AccountLimit],
    working_active: int,
    working_testing: int,
) -> RuleResult:
    """With no testing monitor at all, promote up to five candidates, healthy ones first."""
    wa, wt = working_active, working_testing
    if testing or not candidates:
        return RuleResult([], wa, wt)
    healthy, other = split_bootstrap_candidates(candidates)
    changes: list[StatusChange] = []
    groups = ((healthy, REASON_BOOTSTRAP_HEALTHY), (other, REASON_BOOTSTRAP_OTHER))
    for group, reason in groups:
        for em in group:
            if len(changes) >= BOOTSTRAP_PROMOTIONS:
                return RuleResult(changes, wa, wt)
            change = attempt_promotion(ctx, em, C, T, reason, working_limits, bootstrap=True)
            if change is not None:
                changes.append(change)
                wt += 1
    return RuleResult(changes, wa, wt)


# --- the pipeline -----------------------------------------------------------------------


def _split(
    evaluated: Sequence[EvaluatedMonitor],
) -> dict[ServerStatus, list[EvaluatedMonitor]]:
    lists: dict[ServerStatus, list[EvaluatedMonitor]] = {A: [], T: [], C: [], P: []}
    for em in evaluated:
        bucket = lists.get(em.monitor.server_status)  # type: ignore[call-overload]
        if bucket is not None:
            bucket.append(em)
    return lists


def _healthy_in(monitors: Sequence[EvaluatedMonitor]) -> int:
    return sum(1 for em in monitors if em.monitor.is_healthy and em.state == CandidateState.IN)


def _apply_counts(changes: Sequence[StatusChange], wa: int, wt: int) -> tuple[int, int]:
    for c in changes:
        if c.from_status == A and c.to_status != A:
            wa -= 1
        if c.to_status == T:
            wt += 1
        if c.from_status == T and c.to_status != T:
            wt -= 1
    return wa, wt


def select_changes(
    evaluated: Sequence[EvaluatedMonitor],
    server: ServerInfo,
    account_limits: dict[int, AccountLimit],
    assigned: Sequence[MonitorRow] | NetworkIndex | None,
    now: datetime | None = None,
) -> list[StatusChange]:
    """Every rule in upstream's order; the concatenated change list, duplicates included.

    The inputs are not mutated: the account limits are copied into a working map.
    """
    lists = _split(evaluated)
    active, testing, candidates, paused = lists[A], lists[T], lists[C], lists[P]
    blocked = sum(1 for em in evaluated if em.state == CandidateState.BLOCK)
    ctx = SelectionContext(
        server=server,
        account_limits=account_limits,
        assigned=as_network_index(assigned),  # type: ignore[arg-type]
        limits=calculate_change_limits(len(active), blocked),
        target=TARGET_ACTIVE,
        emergency=len(active) == 0,
    )
    if (
        len(evaluated) < TARGET_ACTIVE
        and _healthy_in(active) == 0
        and _healthy_in(testing) == 0
        and not any(_is_out(em) for em in evaluated)
    ):
        return []  # emergency block-all (§8.0 step 7, §12 Q8)
    working_limits = copy_limits(account_limits)
    wa, wt = len(active), len(testing)

    changes = rule1_immediate_blocking(ctx, active, testing)
    changes += rule2_gradual_removal(ctx, active, testing, len(active))
    wa, wt = _apply_counts(changes, wa, wt)

    from_active = sum(1 for c in changes if c.from_status == A and c.to_status != A)
    r15 = rule1_5_active_excess(ctx, active, wa, wt, from_active)
    changes += r15.changes
    wa, wt = r15.active_count, r15.testing_count

    r3 = rule3_testing_to_active(ctx, testing, active, working_limits, wa, wt)
    changes += r3.changes
    wa, wt = r3.active_count, r3.testing_count
    remaining = max(0, ctx.limits.promotions - len(r3.changes))
    ctx5 = dataclasses.replace(ctx, limits=dataclasses.replace(ctx.limits, promotions=remaining))

    r5 = rule5_candidate_to_testing(ctx5, candidates, testing, working_limits, wa, wt)
    changes += r5.changes
    wa, wt = r5.active_count, r5.testing_count

    r25 = rule2_5_testing_pool(ctx, testing, wa, wt, changes)
    changes += r25.changes
    wa, wt = r25.active_count, r25.testing_count

    changes += rule7_constraint_resolution(ctx, paused, now)

    r6 = rule6_bootstrap(ctx, testing, candidates, working_limits, wa, wt)
    changes += r6.changes
    return changes
