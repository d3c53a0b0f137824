"""spec/selector.md §14.5: ``plan_server`` from rows to evaluation, changes and DB writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from selector_notation import (
    BASE_TESTING_IPS,
    monitor_rows,
    parse_changes,
    parse_evaluation,
    parse_server,
    parse_writes,
)
from selector_scenarios import PLAN_EXPECTATIONS

from ntpmon.selector import (
    CandidateState,
    MonitorRow,
    ServerInfo,
    ViolationType,
    plan_server,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
BASE_SERVER = ServerInfo(id=7, account_id=1, ip="192.0.2.10", ip_version="v4")


def base_rows() -> list[MonitorRow]:
    """BASE of §14.5: seven active and five testing monitors, each in its own /20."""
    active = [
        MonitorRow(
            id=i,
            status="active",
            account_id=100 + i,
            monitor_ip=f"10.{16 * i}.0.1",
            monitor_priority=i,
            count=100,
        )
        for i in range(1, 8)
    ]
    testing = [
        MonitorRow(
            id=i,
            status="testing",
            account_id=190 + i,
            monitor_ip=ip,
            monitor_priority=i + 10,
            count=50,
        )
        for i, ip in BASE_TESTING_IPS.items()
    ]
    return active + testing


def base_with(extra: str = "", **changes: dict[str, object]) -> list[MonitorRow]:
    """BASE, with fields of some rows changed (``m7={"monitor_ip": ...}``) and rows appended."""
    rows = [replace(r, **changes.get(f"m{r.id}", {})) for r in base_rows()]
    return rows + monitor_rows(extra, NOW)


def ps07() -> list[MonitorRow]:
    return base_with(m5={"account_id": 101}, m6={"account_id": 101})


def ps08() -> list[MonitorRow]:
    flags = json.dumps({"monitors_per_server_limit": 3})
    return [replace(r, account_flags=flags) if r.account_id == 101 else r for r in ps07()]


def hours_ago(h: int) -> datetime:
    return NOW.replace(tzinfo=None) - timedelta(hours=h)


PAUSED_30 = "#30 P a=300 ip=198.51.100.5 p=10 n=12"
SETUPS: dict[str, Callable[[], list[MonitorRow]]] = {
    "PS-00": base_with,
    "PS-01": lambda: base_with(
        PAUSED_30 + " cv=network_same_subnet cv_since=-100h last_check=-10h pause=constraint"
    ),
    "PS-02": lambda: base_with(
        PAUSED_30 + " cv=network_same_subnet cv_since=-100h last_check=-4h pause=constraint"
    ),
    "PS-03": lambda: base_with(
        "#30 P a=300 ip=192.0.2.99 p=10 n=12 cv=network_same_subnet cv_since=-100h pause=constraint"
    ),
    "PS-04": lambda: base_with("#30 C a=300 ip=192.0.2.99 p=10 n=12"),
    "PS-05": lambda: base_with("#30 C a=1 ip=198.51.100.7 p=10 n=12"),
    "PS-06": lambda: base_with(m7={"monitor_ip": "192.0.2.77"}),
    "PS-07": ps07,
    "PS-08": ps08,
    "PS-09": lambda: base_with(m7={"monitor_ip": "10.16.5.1"}),
    "PS-10": lambda: base_with(
        m7={
            "monitor_ip": "10.16.5.1",
            "constraint_violation_type": "network_diversity",
            "constraint_violation_since": hours_ago(30),
        }
    ),
    "PS-11": lambda: base_with(
        m4={"constraint_violation_type": "limit", "constraint_violation_since": hours_ago(30)}
    ),
    "PS-12": lambda: base_with(m15={"monitor_status": "paused"}),
    "PS-13": lambda: base_with(m3={"monitor_status": "deleted"}),
    "PS-14": lambda: base_with(m3={"healthy": False}),
    "PS-15": lambda: base_with("#40 - (NULL status) a=400 ip=203.0.113.9 p=1 n=12"),
    "PS-16": lambda: base_with(PAUSED_30 + " last_check=-130h pause=excess"),
    "PS-17": lambda: base_with(PAUSED_30 + " last_check=-130h pause=manual"),
    "PS-18": lambda: base_with(
        "#30 P a=300 ip=198.51.100.0 p=10 n=12; #31 P a=301 ip=198.51.100.1 p=10 n=12;"
        " #32 P a=302 ip=198.51.100.2 p=10 n=12"
    ),
}


def scenario_input(sid: str) -> tuple[ServerInfo, list[MonitorRow]]:
    spec = PLAN_EXPECTATIONS[sid]
    if sid in SETUPS:
        return BASE_SERVER, SETUPS[sid]()
    return parse_server(spec["server"]), monitor_rows(spec["rows"], NOW)


@pytest.mark.parametrize("sid", sorted(PLAN_EXPECTATIONS))
def test_plan_server(sid: str) -> None:
    spec = PLAN_EXPECTATIONS[sid]
    server, rows = scenario_input(sid)
    stored = {r.id: r.constraint_violation_since for r in rows if r.constraint_violation_since}

    plan = plan_server(server, rows, NOW)

    expected_eval = parse_evaluation(spec["evaluation"])
    got_eval = {
        em.monitor.id: (em.state, em.violation.type if em.violation else ViolationType.NONE)
        for em in plan.evaluated
    }
    for mid, got in got_eval.items():
        assert got == expected_eval.get(mid, (CandidateState.IN, ViolationType.NONE)), mid
    assert set(expected_eval) <= set(got_eval)
    assert plan.status_changes == parse_changes(spec["changes"])
    writes, changed = parse_writes(spec["writes"], NOW, stored)
    assert plan.writes == writes
    assert plan.changed is changed
