"""Reader of the spec's scenario notation (spec/selector.md §14.1).

Monitors: ``#ID S[/G] [a=ACCT] [ip=IP] [H] [U] [m] [p=PRIO] [n=COUNT] [v=VIOL] [s=STATE]``
with ``#a..#b`` ranges and ``p=id+k``; changes: ``ID F>T CODE``; writes: ``status(m)=S`` etc.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ntpmon.selector import (
    AccountLimit,
    CandidateState,
    ClearViolation,
    EvaluatedMonitor,
    MonitorCandidate,
    MonitorRow,
    ServerInfo,
    ServerStatus,
    SetPauseReason,
    SetStatus,
    SetViolation,
    StatusChange,
    TouchLastCheck,
    Violation,
    ViolationType,
)

STATUS = {
    "A": ServerStatus.ACTIVE,
    "T": ServerStatus.TESTING,
    "C": ServerStatus.CANDIDATE,
    "P": ServerStatus.PAUSED,
    "-": None,
}
VIOLATION = {
    "limit": ViolationType.LIMIT,
    "subnet": ViolationType.NETWORK_SAME_SUBNET,
    "account": ViolationType.ACCOUNT,
    "diversity": ViolationType.NETWORK_DIVERSITY,
}
STATE = {
    "in": CandidateState.IN,
    "out": CandidateState.OUT,
    "block": CandidateState.BLOCK,
    "pending": CandidateState.PENDING,
}
REASONS = {
    "BLK": "blocked by constraints or global status",
    "GR": "gradual removal (health or constraints)",
    "XA": "excess active demotion",
    "PA": "promotion to active",
    "EPA": "emergency promotion: zero active monitors",
    "CT": "candidate to testing",
    "EPT": "emergency promotion to testing: zero active monitors",
    "RP": "replacement promotion",
    "RD": "replaced by better candidate",
    "SWP": "active-testing swap (promote)",
    "SWD": "active-testing swap (demote)",
    "BH": "bootstrap: promoting healthy candidate",
    "BC": "bootstrap: promoting candidate",
    "BE": "bootstrap emergency promotion to testing: zero active monitors",
    "UNP": "constraint resolution: unpausing resolved constraint",
}
# §14.5 BASE: the addresses of the five testing monitors #11..#15.
BASE_TESTING_IPS = {
    11: "10.144.0.1",
    12: "10.160.0.1",
    13: "10.176.0.1",
    14: "10.192.0.1",
    15: "10.208.0.1",
}
_HEAD = re.compile(r"#(\d+)(?:\.\.#(\d+))?\s+([ATCP-])(?:/(\w+))?")


@dataclass
class Spec:
    """One monitor's attributes as written, before defaults of either notation apply."""

    id: int
    status: str | None
    global_status: str
    attrs: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    def int_attr(self, name: str, default: int | None = None) -> int | None:
        raw = self.attrs.get(name)
        if raw is None:
            return default
        if raw.startswith("id"):
            return self.id + int(raw[2:] or 0)
        return int(raw)


def parse_specs(text: str) -> list[Spec]:
    """Expand ``#a..#b`` groups; attributes after the status apply to every id."""
    text = text.strip()
    if text in ("", "(none)"):
        return []
    specs: list[Spec] = []
    for raw in text.split(";"):
        part = re.sub(r"\(NULL status\)", "", raw).strip()
        head = _HEAD.match(part)
        if head is None:
            raise ValueError(f"bad monitor notation {part!r}")
        first = int(head.group(1))
        last = int(head.group(2) or first)
        attrs: dict[str, str] = {}
        flags: set[str] = set()
        for token in part[head.end() :].split():
            if "=" in token:
                key, _, value = token.partition("=")
                attrs[key] = value
            else:
                flags.add(token)
        for mid in range(first, last + 1):
            specs.append(
                Spec(mid, STATUS[head.group(3)], head.group(4) or "active", dict(attrs), set(flags))
            )
    return specs


def evaluated_monitors(text: str) -> list[EvaluatedMonitor]:
    """§14.1 defaults for evaluated monitors: unhealthy, no metrics, priority 0, UNKNOWN."""
    out = []
    for s in parse_specs(text):
        monitor = MonitorCandidate(
            id=s.id,
            global_status=s.global_status,
            server_status=s.status or ServerStatus.CANDIDATE,
            account_id=s.int_attr("a"),
            ip=s.attrs.get("ip", ""),
            has_metrics="m" in s.flags,
            is_healthy="H" in s.flags,
            priority=s.int_attr("p", 0) or 0,
            count=s.int_attr("n", 0) or 0,
        )
        vtype = s.attrs.get("v")
        violation = Violation(VIOLATION[vtype], None, "given") if vtype else None
        state = STATE[s.attrs["s"]] if "s" in s.attrs else CandidateState.UNKNOWN
        out.append(EvaluatedMonitor(monitor, violation, state))
    return out


def hours_before(now: datetime, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    return now - timedelta(hours=int(raw.removeprefix("-").removesuffix("h")))


def monitor_rows(text: str, now: datetime) -> list[MonitorRow]:
    """§14.1 defaults for DB rows: global active, healthy, no flags, nothing stored."""
    rows = []
    for s in parse_specs(text):
        rows.append(
            MonitorRow(
                id=s.id,
                monitor_ip=s.attrs.get("ip"),
                status=s.status,
                monitor_status=s.global_status,
                account_id=s.int_attr("a"),
                monitor_priority=s.int_attr("p", 0),
                healthy="U" not in s.flags,
                count=s.int_attr("n", 0) or 0,
                constraint_violation_type=s.attrs.get("cv"),
                constraint_violation_since=hours_before(now, s.attrs.get("cv_since")),
                last_constraint_check=hours_before(now, s.attrs.get("last_check")),
                pause_reason=s.attrs.get("pause"),
            )
        )
    return rows


def parse_changes(text: str) -> list[StatusChange]:
    text = text.strip()
    if text == "(no changes)":
        return []
    changes = []
    for part in text.split(";"):
        mid, move, code = part.split()
        src, dst = move.split(">")
        xt = re.fullmatch(r"XT\((\d+)>(\d+)\)", code)
        reason = (
            f"excess testing monitors ({xt.group(1)} > target {xt.group(2)})"
            if xt
            else REASONS[code]
        )
        changes.append(StatusChange(int(mid), STATUS[src], STATUS[dst], reason))  # type: ignore[arg-type]
    return changes


def parse_server(text: str) -> ServerInfo:
    """``id=1 a=999 ip=192.168.1.100`` (each part optional except id)."""
    attrs = dict(token.split("=", 1) for token in text.split())
    return ServerInfo(
        id=int(attrs["id"]),
        account_id=int(attrs["a"]) if "a" in attrs else None,
        ip=attrs.get("ip", ""),
    )


def parse_limits(text: str) -> dict[int, AccountLimit]:
    """``{101: max=2 act=0 test=0, ...}``."""
    inner = text.strip().removeprefix("{").removesuffix("}").strip()
    limits: dict[int, AccountLimit] = {}
    if not inner:
        return limits
    for part in inner.split(","):
        account, _, rest = part.partition(":")
        values = dict(token.split("=") for token in rest.split())
        limits[int(account)] = AccountLimit(
            int(account), int(values["max"]), int(values["act"]), int(values["test"])
        )
    return limits


def parse_settings(text: str) -> dict[str, str]:
    """``key=value; key=value`` or ``key=value, key=value`` (top-level separators only)."""
    settings: dict[str, str] = {}
    depth = 0
    current = ""
    sep = ";" if ";" in text else ","
    for ch in text + sep:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == sep and depth == 0:
            key, _, value = current.strip().partition("=")
            settings[key] = value
            current = ""
        else:
            current += ch
    return settings


_WRITE = re.compile(r"(\w+)\((\d+)\)(?:=(.*))?")


def parse_writes(text: str, now: datetime, stored_since: dict[int, datetime]) -> tuple[list, bool]:
    """The write list and the ``changed`` flag; ``since=kept`` takes the stored value."""
    writes: list = []
    changed = False
    for part in (p.strip() for p in text.split(";")):
        if part.startswith("changed="):
            changed = part == "changed=true"
            continue
        if part == "(none)":
            continue
        m = _WRITE.fullmatch(part)
        if m is None:
            raise ValueError(f"bad write {part!r}")
        kind, mid, value = m.group(1), int(m.group(2)), m.group(3)
        if kind == "status":
            writes.append(SetStatus(mid, ServerStatus(value)))
        elif kind == "violation":
            vtype, _, since = value.partition(",since=")
            when = now if since == "now" else stored_since[mid]
            writes.append(SetViolation(mid, ViolationType(vtype), when))
        elif kind == "clear":
            writes.append(ClearViolation(mid))
        elif kind == "pause_reason":
            writes.append(SetPauseReason(mid, value))
        elif kind == "checked":
            writes.append(TouchLastCheck(mid))
        else:
            raise ValueError(f"unknown write {kind!r}")
    return writes, changed


def parse_evaluation(text: str) -> dict[int, tuple[CandidateState, ViolationType]]:
    """``all IN`` → {}; ``3=OUT(subnet), 15=BLOCK`` → the non-IN states and violations."""
    if text.strip() == "all IN":
        return {}
    result = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)=(\w+)(?:\((\w+)\))?\s*", part)
        assert m is not None, part
        vtype = VIOLATION[m.group(3)] if m.group(3) else ViolationType.NONE
        result[int(m.group(1))] = (CandidateState(m.group(2).lower()), vtype)
    return result
