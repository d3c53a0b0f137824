"""Human-readable text for the selector's commands (plans and review outcomes)."""

from __future__ import annotations

from ntpmon.selector.service import ServerReview
from ntpmon.selector.types import ServerPlan, StatusChange


def format_change(change: StatusChange, names: dict[int, str] | None = None) -> str:
    name = (names or {}).get(change.monitor_id)
    who = f"monitor {change.monitor_id}" + (f" ({name})" if name else "")
    return f"{who}: {change.from_status} -> {change.to_status} ({change.reason})"


def format_plan(plan: ServerPlan, *, verbose: bool = False) -> str:
    """The planned changes; with ``verbose`` also every monitor's evaluation and DB write."""
    names = {em.monitor.id: em.monitor.tls_name for em in plan.evaluated}
    lines = [f"server {plan.server.id} ({plan.server.ip}): {len(plan.evaluated)} monitor(s)"]
    if verbose:
        lines.append("monitors (best first):")
        for em in plan.evaluated:
            m = em.monitor
            violation = em.violation.type if em.violation and em.violation.type else "-"
            lines.append(
                f"  {m.id:>6} {m.tls_name or '-':<30} global={m.global_status:<8}"
                f" server={m.server_status:<9} prio={m.priority:<6} n={m.count:<5}"
                f" healthy={'yes' if m.is_healthy else 'no':<3} state={em.state}"
                f" violation={violation}"
            )
    if plan.status_changes:
        lines.append("changes:")
        lines += [f"  {format_change(c, names)}" for c in plan.status_changes]
    else:
        lines.append("changes: none")
    if verbose:
        lines.append("writes:" if plan.writes else "writes: none")
        lines += [f"  {w}" for w in plan.writes]
    lines.append(f"would apply changes: {'yes' if plan.changed else 'no'}")
    return "\n".join(lines)


def format_review(review: ServerReview) -> str:
    if review.error is not None:
        return f"server {review.server_id}: error: {review.error}"
    applied = review.result.applied if review.result else []
    failed = review.result.failed if review.result else []
    text = f"server {review.server_id}: {len(applied)} change(s) applied"
    if failed:
        text += f", {len(failed)} failed"
    return text
