"""The local stack's layout, commands and summary (pure parts, no processes)."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from pathlib import Path

import pytest

from ntpmon.db.pages import MonitorOverview, ServerOverview
from ntpmon.devtools.runstack import plan
from ntpmon.devtools.runstack.main import PIPED_EVERY_S, SummaryPrinter
from ntpmon.devtools.runstack.preflight import missing_pieces
from ntpmon.devtools.runstack.summary import (
    moved_as_expected,
    render,
    server_states,
    submitted_results,
)
from ntpmon.scorer.statusscore import Measurement, score


def test_responders_cover_the_nine_behaviours_on_distinct_loopback_addresses() -> None:
    names = [r.name for r in plan.RESPONDERS]
    assert len(names) == len(set(names)) == 9
    addresses = [ipaddress.ip_address(r.address) for r in plan.RESPONDERS]
    assert len(set(addresses)) == 9 and all(a.is_loopback for a in addresses)
    assert plan.BASE_CHECK == "127.100.0.1" and plan.RESPONDERS[0].settings == {}


def test_agents_respect_the_selector_network_rules() -> None:
    """Different /20 (network diversity) and never in a server's /24 (same subnet)."""
    nets20 = {ipaddress.ip_network(f"{a}/20", strict=False) for a in plan.AGENT_ADDRESSES}
    assert len(nets20) == len(plan.AGENT_ADDRESSES) == 2
    for agent in plan.AGENT_ADDRESSES:
        net24 = ipaddress.ip_network(f"{agent}/24", strict=False)
        assert all(ipaddress.ip_address(r.address) not in net24 for r in plan.RESPONDERS)
        assert ipaddress.ip_address(agent).is_loopback


@pytest.mark.parametrize(
    ("settings", "offset_ns", "error", "no_response", "stratum", "direction"),
    [
        ({}, 0, "", False, 2, plan.Direction.UP),
        ({"offset": 0.05}, 50_000_000, "", False, 2, plan.Direction.UP),
        ({"offset": 0.5}, 500_000_000, "", False, 2, plan.Direction.DOWN),
        ({"offset": 4.0}, 4_000_000_000, "", False, 2, plan.Direction.DOWN),
        ({"kiss": "RATE"}, None, "RATE", False, 0, plan.Direction.DOWN),
        ({"kiss": "DENY"}, None, "DENY", False, 0, plan.Direction.DOWN),
        ({"stratum": 16}, 0, "bad stratum 16", False, 16, plan.Direction.DOWN),
        ({"leap": 3}, 0, "", False, 2, plan.Direction.UP),
        ({"behaviour": "no-answer"}, None, "i/o timeout", True, 0, plan.Direction.DOWN),
    ],
)
def test_expected_direction_follows_the_step_table(
    settings, offset_ns, error, no_response, stratum, direction
) -> None:
    """Each responder's declared direction is the sign of the step its answer earns."""
    spec = next(r for r in plan.RESPONDERS if dict(r.settings) == settings)
    m = Measurement(
        ts=datetime(2026, 1, 1),
        offset_ns=offset_ns,
        stratum=stratum,
        error=error,
        no_response=no_response,
    )
    step = score(m).step
    assert spec.direction is direction
    assert moved_as_expected(direction, step)


@pytest.mark.parametrize(
    ("base", "ports"),
    [(0, plan.Ports()), (18000, plan.Ports(*range(18000, 18008)))],
)
def test_ports_from_base(base: int, ports: plan.Ports) -> None:
    assert plan.Ports.from_base(base) == ports


def layout(tmp_path: Path) -> plan.Layout:
    return plan.Layout(
        run_dir=tmp_path,
        dsn=plan.sqlite_dsn(tmp_path),
        ports=plan.Ports.from_base(18000),
        ntp_port=12300,
    )


def test_api_command_listens_on_loopback_and_never_names_a_public_broker(tmp_path) -> None:
    command = plan.api_command(layout(tmp_path))
    assert command[1] == "server"
    for flag in ("--listen", "--management-listen", "--health-listen", "--metrics-listen"):
        assert command[command.index(flag) + 1].startswith("127.0.0.1:")
    assert command[command.index("--mqtt-host") + 1] == "127.0.0.1"
    assert "--jwtkey" not in command  # no broker: agents get no MQTT settings at all
    assert "--no-mqtt" in command


def test_api_command_with_a_local_broker(tmp_path) -> None:
    with_broker = plan.dataclasses.replace(layout(tmp_path), mqtt=True, jwt_key="k" * 32)
    command = plan.api_command(with_broker)
    assert command[command.index("--jwtkey") + 1] == "k" * 32
    assert "--mqtt-plain" in command and "--no-mqtt" not in command
    assert command[command.index("--internal-listen") + 1] == "127.0.0.1:18006"


def test_exporter_and_pages_share_the_chdb_archive_of_the_run(tmp_path) -> None:
    """One chDB directory in the run directory: the exporter writes it, the pages read it."""
    stack = layout(tmp_path)
    exporter = plan.exporter_command(stack)
    api = plan.api_command(stack)
    assert exporter[1:3] == ["export", "server"]
    assert exporter[0] == plan.program("monitor-scorer")
    dsn = exporter[exporter.index("--clickhouse-dsn") + 1]
    assert dsn == api[api.index("--clickhouse-dsn") + 1] == plan.clickhouse_dsn(tmp_path)
    assert dsn == f"chdb://{tmp_path.resolve() / 'clickhouse'}"
    assert exporter[exporter.index("--metrics-port") + 1] == "18007"  # the eighth port


def test_every_piece_the_stack_starts_is_installed() -> None:
    """The preflight list (now with ``export server`` and chDB) names real commands."""
    assert missing_pieces() == []


def test_agent_environment_points_at_this_stack_only(tmp_path) -> None:
    env = plan.agent_env(layout(tmp_path), 1, grpc_port=18000, management_port=18001)
    assert env["API_HOST"] == "https://127.0.0.1:18001"
    assert env["DEVEL_API_SERVER"] == "https://127.0.0.1:18000"
    assert env["MONITOR_LOCAL_IPV4"] == plan.AGENT_ADDRESSES[1]
    assert env["MONITOR_CA_FILE"].endswith("monitor-api/ca/ca.pem")
    assert env["MONITOR_NTP_PORT"] == "12300" and env["DEPLOYMENT_MODE"] == "devel"
    assert "DATABASE_DSN" not in env and env["MONITOR_MQTT_PLAIN"] == "true"
    assert env["MONITOR_TELEMETRY"] == "off"  # nothing goes to the devel collector
    argv = plan.agent_command(layout(tmp_path), 1, "monitor")
    assert argv[-1] == "monitor" and str(tmp_path / "agent-2") in argv


def test_sqlite_dsn_is_absolute(tmp_path) -> None:
    assert plan.sqlite_dsn(tmp_path) == f"sqlite:///{tmp_path.resolve()}/ntpmon.sqlite"


def _overview(id_: int, ip: str, score_raw: float, counts: dict) -> ServerOverview:
    return ServerOverview(id_, ip, "v4", None, score_raw, None, None, counts)


def test_server_states_join_by_address_and_judge_direction() -> None:
    servers = [
        _overview(1, "127.100.0.1", 3.5, {"testing": 2}),
        _overview(5, "127.100.0.5", -9.75, {"testing": 1, "candidate": 1}),
        _overview(3, "127.100.0.3", 0.0, {}),
    ]
    counts = {(1, 2): 3, (1, 3): 4, (5, 2): 2}
    states = {s.spec.name: s for s in server_states(plan.RESPONDERS, servers, counts)}
    assert states["accurate"].measurements == 7 and states["accurate"].on_track is True
    assert states["silent"].on_track is True
    assert states["offset-500ms"].on_track is None  # not measured yet
    assert states["kiss-DENY"].server_id is None and states["kiss-DENY"].score is None


def test_render_lists_every_server_and_agent() -> None:
    servers = [_overview(1, "127.100.0.1", 3.5, {"testing": 2})]
    states = server_states(plan.RESPONDERS, servers, {(1, 2): 3})
    monitor = MonitorOverview(
        2, "agent-1-abc.devel.mon.ntppool.dev", "", "127.16.0.1", "v4", "active",
        "v0.1.0", datetime(2026, 1, 1, 12, 0, 5), None, None, None, {},
    )  # fmt: skip
    text = render(states, [monitor], header=["title line"])
    lines = text.splitlines()
    assert lines[0] == "title line"
    accurate = next(line for line in lines if line.startswith("accurate"))
    assert "+3.50" in accurate and " ok " in accurate and "0/2/0" in accurate
    assert any(line.startswith("leap-3") and " -- " in line for line in lines)
    assert any("agent-1-abc" in line and "12:00:05" in line for line in lines)
    assert "(no agent registered yet)" in render(states, [], header=[])


def test_submitted_results_sums_batch_counts_from_json_logs() -> None:
    lines = [
        json.dumps({"msg": "batch submitted", "count": 9}),
        "not json: batch submitted count=100",
        json.dumps({"msg": "batch processing", "count": 50}),
        json.dumps({"msg": "batch submitted", "count": 3}),
    ]
    assert submitted_results("\n".join(lines)) == 12
    assert submitted_results("") == 0


def test_missing_pieces_names_absent_commands_and_modules() -> None:
    missing = missing_pieces(
        commands=[
            ("monitor-api", "ntpmon.api.cli", ("version",)),
            ("monitor-api", "ntpmon.api.cli", ("no-such-command",)),
            ("nothing", "ntpmon.no_such_module", ("x",)),
        ],
        modules=["ntpmon.db.pages", "ntpmon.no_such_responder"],
    )
    assert missing[0] == "ntpmon.no_such_responder"
    assert "`monitor-api no-such-command`" in missing
    assert any(m.startswith("nothing (ntpmon.no_such_module does not load") for m in missing)
    assert len(missing) == 3


def test_piped_summary_is_appended_only_when_changed_and_not_too_often() -> None:
    now = [0.0]
    printed: list[str] = []
    printer = SummaryPrinter(printed.append, interactive=False, clock=lambda: now[0])
    for step, text in enumerate(["a", "a", "b", "b", "c"]):
        now[0] = step * 5.0  # a refresh every 5 s
        printer.show(text)
    assert printed == ["\na"]  # "b" and "c" came within a minute of "a"
    now[0] = PIPED_EVERY_S + 1
    printer.show("c")
    printer.show("c")
    assert printed == ["\na", "\nc"]
    printer.show("d", final=True)  # the last summary is always shown
    assert printed[-1] == "\nd"


def test_terminal_summary_is_redrawn_every_refresh() -> None:
    printed: list[str] = []
    printer = SummaryPrinter(printed.append, interactive=True)
    printer.show("a")
    printer.show("a")
    assert printed == ["\x1b[H\x1b[Ja", "\x1b[H\x1b[Ja"]
