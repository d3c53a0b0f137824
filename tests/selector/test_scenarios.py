"""spec/selector.md §14.3–§14.4: Rule 2, Rule 6 and ``select_changes`` scenarios, as produced
by the upstream code (order, duplicates and reasons all matter)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from selector_notation import (
    evaluated_monitors,
    parse_changes,
    parse_limits,
    parse_server,
    parse_settings,
)
from selector_scenarios import RULE_SCENARIOS

from ntpmon.selector import (
    ChangeLimits,
    SelectionContext,
    ServerInfo,
    ServerStatus,
    rule2_gradual_removal,
    rule6_bootstrap,
    select_changes,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _ids(prefix: str) -> list[dict[str, str]]:
    return [s for s in RULE_SCENARIOS if s["id"].startswith(prefix)]


def _by_status(monitors, status):
    return [em for em in monitors if em.monitor.server_status == status]


@pytest.mark.parametrize("scenario", _ids("R2"), ids=lambda s: s["id"])
def test_rule2_gradual_removal(scenario: dict[str, str]) -> None:
    settings = parse_settings(scenario["rule2_gradual_removal"])
    monitors = evaluated_monitors(scenario["monitors"])
    ctx = SelectionContext(
        server=ServerInfo(id=1),
        account_limits={},
        assigned=[],
        limits=ChangeLimits(
            active_removals=int(settings["active_removals"]),
            testing_removals=int(settings["testing_removals"]),
            promotions=0,
        ),
        target=int(settings["target"]),
    )
    changes = rule2_gradual_removal(
        ctx,
        _by_status(monitors, ServerStatus.ACTIVE),
        _by_status(monitors, ServerStatus.TESTING),
        int(settings["current_active"]),
    )
    assert changes == parse_changes(scenario["expect"])


@pytest.mark.parametrize("scenario", _ids("R6"), ids=lambda s: s["id"])
def test_rule6_bootstrap(scenario: dict[str, str]) -> None:
    settings = parse_settings(scenario["rule6_bootstrap"])
    monitors = evaluated_monitors(scenario["monitors"])
    limits = parse_limits(settings["working_limits"])
    ctx = SelectionContext(
        server=parse_server("id=" + settings["server id"]),
        account_limits=limits,
        assigned=[],
        limits=ChangeLimits(2, 2, 2),
        emergency=settings["emergency"] == "true",
    )
    result = rule6_bootstrap(
        ctx,
        _by_status(monitors, ServerStatus.TESTING),
        _by_status(monitors, ServerStatus.CANDIDATE),
        limits,
        int(settings["working_active"]),
        int(settings["working_testing"]),
    )
    assert result.changes == parse_changes(scenario["expect"])
    counts = dict(t.split("=") for t in scenario["returned counts"].split())
    assert (result.active_count, result.testing_count) == (
        int(counts["active"]),
        int(counts["testing"]),
    )


@pytest.mark.parametrize("scenario", _ids("SC"), ids=lambda s: s["id"])
def test_select_changes(scenario: dict[str, str]) -> None:
    settings = parse_settings(scenario["select_changes"])
    server = parse_server("id=" + settings["server id"])
    limits = parse_limits(settings["limits"])
    monitors = evaluated_monitors(scenario["monitors"])
    before_limits = copy.deepcopy(limits)
    before_monitors = copy.deepcopy(monitors)

    changes = select_changes(monitors, server, limits, [], NOW)

    assert changes == parse_changes(scenario["expect"])
    assert limits == before_limits, "select_changes must not mutate the account limits"
    assert monitors == before_monitors, "select_changes must not mutate its monitors"
