"""What the local stack consists of: responders, addresses, ports and each process's command.

Pure data and functions (no I/O), so the layout can be tested and the orchestrator stays a
thin sequence of steps.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Mapping
from pathlib import Path


class Direction(enum.StrEnum):
    """Where a server's score must head under the scoring rules."""

    UP = "up"
    DOWN = "down"


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderSpec:
    """One local NTP server with a deliberate behaviour, and the score it must earn."""

    name: str
    address: str
    settings: Mapping[str, object]
    """Keyword arguments of ``ntpmon.testing.ntpserver.ResponderSettings``."""
    direction: Direction
    expectation: str


RESPONDERS: tuple[ResponderSpec, ...] = (
    ResponderSpec("accurate", "127.100.0.1", {}, Direction.UP, "climbs towards 20"),
    ResponderSpec("offset-50ms", "127.100.0.2", {"offset": 0.05}, Direction.UP, "step +0.83"),
    ResponderSpec(
        "offset-500ms", "127.100.0.3", {"offset": 0.5}, Direction.DOWN, "settles near -8.5"
    ),
    ResponderSpec("offset-4s", "127.100.0.4", {"offset": 4.0}, Direction.DOWN, "step -4, max -20"),
    ResponderSpec(
        "silent", "127.100.0.5", {"behaviour": "no-answer"}, Direction.DOWN, "step -5 (timeout)"
    ),
    ResponderSpec("kiss-RATE", "127.100.0.6", {"kiss": "RATE"}, Direction.DOWN, "step -3.5"),
    ResponderSpec(
        "kiss-DENY", "127.100.0.7", {"kiss": "DENY"}, Direction.DOWN, "step -10, max -50"
    ),
    ResponderSpec("stratum-16", "127.100.0.8", {"stratum": 16}, Direction.DOWN, "step -4"),
    # Leap 3 is reported in the result's attributes, not scored (agent.md §11.2).
    ResponderSpec("leap-3", "127.100.0.9", {"leap": 3}, Direction.UP, "step +1, leap noted"),
)
"""The demo servers. Their addresses sit in a /24 of their own, away from the agents."""

AGENT_ADDRESSES = ("127.16.0.1", "127.32.0.1")
"""Two agents in different /20 networks: the selector's network-diversity rule lets only one
monitor per /20 watch a server, and the same-subnet rule keeps monitors out of a server's /24."""

BASE_CHECK = RESPONDERS[0].address
"""The agents' local clock check asks the accurate responder (never a host on the Internet)."""

SCHEDULE = {
    "interval_active": "20s",
    "interval_testing": "60s",
    "interval_all": "10s",
    "batch_size": 10,
}
"""The fastest cadence monitor-api accepts, so scores move within minutes."""


class StartAs(enum.StrEnum):
    """How the approved agents start out on every server.

    ``candidate`` is what approval does. Candidates are probed only every 2 h, and with just
    two monitors the selector leaves healthy candidates alone (its emergency rule: fewer
    monitors than its target of 7 and none healthy in active/testing), so the demo starts
    them as ``testing`` — probed every minute — as an operator of a small private network
    would; the selector then promotes (testing → active after 32 checks) from there.
    """

    CANDIDATE = "candidate"
    TESTING = "testing"


@dataclasses.dataclass(frozen=True, slots=True)
class Ports:
    """TCP ports of the stack; 0 lets each listener pick a free one (tests)."""

    grpc: int = 0
    management: int = 0
    health: int = 0
    metrics: int = 0
    scorer_metrics: int = 0
    selector_metrics: int = 0
    internal: int = 0
    """monitor-api's internal HTTP API (ad-hoc checks over MQTT); answers without a broker too."""
    exporter_metrics: int = 0

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """``base`` and the ports after it, one per field (0: every port picked free)."""
        if base == 0:
            return cls()
        return cls(*(base + i for i in range(len(dataclasses.fields(cls)))))


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where everything of one run lives."""

    run_dir: Path
    dsn: str
    ports: Ports
    ntp_port: int
    mqtt: bool = False
    jwt_key: str = ""
    start_as: StartAs = StartAs.TESTING

    @property
    def api_data(self) -> Path:
        return self.run_dir / "monitor-api"

    @property
    def ca_file(self) -> Path:
        return self.api_data / "ca" / "ca.pem"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def clickhouse_dsn(self) -> str:
        return clickhouse_dsn(self.run_dir)

    def agent_state(self, index: int) -> Path:
        return self.run_dir / f"agent-{index + 1}"


def sqlite_dsn(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'ntpmon.sqlite').resolve()}"


def clickhouse_dsn(run_dir: Path) -> str:
    """The exporter's chDB archive, which monitor-api's pages read as well.

    chDB lets one process at a time open the directory; ``Archive`` opens it per export pass
    or page request and waits up to 10 s for the other process, so the two share it.
    """
    return f"chdb://{(run_dir / 'clickhouse').resolve()}"


def program(name: str) -> str:
    """A console script of this environment (beside the running interpreter)."""
    return str(Path(sys.executable).parent / name)


def common_env() -> dict[str, str]:
    """Variables every child gets: devel mode and JSON logs (the summary parses them)."""
    return {"DEPLOYMENT_MODE": "devel", "NTPMON_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


def server_env(layout: Layout) -> dict[str, str]:
    """monitor-api, the scorer, the selector and admin commands also get the database."""
    return {**common_env(), "DATABASE_DSN": layout.dsn}


def api_command(layout: Layout) -> list[str]:
    p = layout.ports
    command = [
        program("monitor-api"),
        "server",
        "--data-dir",
        str(layout.api_data),
        "--listen",
        f"127.0.0.1:{p.grpc}",
        "--management-listen",
        f"127.0.0.1:{p.management}",
        "--health-listen",
        f"127.0.0.1:{p.health}",
        "--metrics-listen",
        f"127.0.0.1:{p.metrics}",
        # Agents are only ever pointed at this machine's broker (or none), never a public one.
        "--mqtt-host",
        "127.0.0.1",
        "--mqtt-port",
        "1883",
        # served with or without a broker (api.md §10.3: --no-mqtt skips the broker only)
        "--internal-listen",
        f"127.0.0.1:{p.internal}",
        "--clickhouse-dsn",
        layout.clickhouse_dsn,
    ]
    if layout.mqtt and layout.jwt_key:
        command += ["--jwtkey", layout.jwt_key, "--mqtt-plain"]
    else:
        command.append("--no-mqtt")
    return command


def scorer_command(layout: Layout) -> list[str]:
    return _scorer_service(layout, "scorer", layout.ports.scorer_metrics)


def selector_command(layout: Layout) -> list[str]:
    return _scorer_service(layout, "selector", layout.ports.selector_metrics)


def _scorer_service(layout: Layout, group: str, metrics_port: int) -> list[str]:
    """``monitor-scorer scorer|selector server`` with its own metrics port."""
    return [
        *(program("monitor-scorer"), group, "server"),
        *("--metrics-addr", "127.0.0.1", "--metrics-port", str(metrics_port)),
    ]


EXPORT_INTERVAL_S = 5
"""Seconds the exporter idles between passes: the demo's history reaches ClickHouse quickly."""


def exporter_command(layout: Layout) -> list[str]:
    """``monitor-scorer export server``: log_scores and traceroutes into the chDB archive."""
    return [
        *(program("monitor-scorer"), "export", "server"),
        *("--clickhouse-dsn", layout.clickhouse_dsn, "--interval", str(EXPORT_INTERVAL_S)),
        *("--metrics-port", str(layout.ports.exporter_metrics)),
    ]


def admin_command(*args: str) -> list[str]:
    return [program("monitor-api"), "admin", *args]


def agent_command(layout: Layout, index: int, *args: str) -> list[str]:
    return [
        program("ntppool-agent"),
        "--env",
        "devel",
        "--state-dir",
        str(layout.agent_state(index)),
        "--no-ipv6",
        *args,
    ]


def agent_env(layout: Layout, index: int, grpc_port: int, management_port: int) -> dict[str, str]:
    """The devel knobs that point an agent at this stack (contract §6)."""
    return {
        **common_env(),
        "API_HOST": f"https://127.0.0.1:{management_port}",
        "DEVEL_API_SERVER": f"https://127.0.0.1:{grpc_port}",
        "MONITOR_CA_FILE": str(layout.ca_file),
        "MONITOR_LOCAL_IPV4": AGENT_ADDRESSES[index],
        "MONITOR_NTP_PORT": str(layout.ntp_port),
        "MONITOR_ALLOW_LOOPBACK": "true",
        # The local broker (used only when one answers) speaks plain TCP on loopback.
        "MONITOR_MQTT_PLAIN": "true",
        # No collector in the local stack: the devel one would refuse our embedded CA's certs.
        "MONITOR_TELEMETRY": "off",
    }
