"""Which agents are online, on which version, for which monitors (api.md §10.4, §11.2, §11.3).

Agents publish a retained status message; the broker replays the retained ones to monitor-api
on every (re)subscription, so the map rebuilds itself after a restart. The map is shared by the
MQTT side and the HTTP handlers, hence the lock; the monitor rows are loaded from the database
by an injected function so this module stays free of SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from ntpmon.api.mqserver.adhoc import (
    account_label,
    supports_adhoc,
    supports_metrics,
)
from ntpmon.common.clock import Clock
from ntpmon.db.models import Monitor
from ntpmon.mqttcm.status import StatusMessage, rfc3339_seconds

log = logging.getLogger(__name__)

MonitorLoader = Callable[[str], Sequence[Monitor]]
GAUGE_LABELS = ("client", "version", "ip_version", "account", "account_id", "depenv")


@dataclass(frozen=True, slots=True)
class ClientState:
    """What is known about one agent (keyed by the name in its status topic)."""

    key: str
    online: bool = False
    last_seen: datetime | None = None
    version_info: dict[str, Any] = field(default_factory=dict)
    updated_mq: str = ""
    monitors: tuple[Monitor, ...] = ()
    name: str = ""

    @property
    def version(self) -> str:
        value = self.version_info.get("Version", "")
        return value if isinstance(value, str) else ""

    @property
    def ip_versions(self) -> list[str]:
        """Distinct non-NULL ip versions of the monitor rows, in row order."""
        seen: list[str] = []
        for m in self.monitors:
            if m.ip_version and m.ip_version not in seen:
                seen.append(m.ip_version)
        return seen

    def online_json(self) -> dict[str, Any]:
        """One ``GET /monitors/online`` entry."""
        doc: dict[str, Any] = {"Name": self.name, "IpVersions": self.ip_versions}
        if len(self.ip_versions) == 1:
            doc["IpVersion"] = self.ip_versions[0]
        doc["Version"] = self.version_info
        doc["UpdatedMQ"] = self.updated_mq
        doc["LastSeen"] = rfc3339_seconds(self.last_seen) if self.last_seen else ""
        doc["Online"] = self.online
        return doc


class MonitorsConnectedGauge:
    """``monitors_connected``, rebuilt from scratch after every status message."""

    def __init__(self, registry: CollectorRegistry, depenv: str) -> None:
        self.depenv = depenv
        self.gauge = Gauge(
            "monitors_connected", "monitors connected to MQTT", GAUGE_LABELS, registry=registry
        )

    def rebuild(self, clients: Sequence[ClientState]) -> None:
        self.gauge.clear()
        for client in clients:
            if not client.online:
                continue
            for m in client.monitors:
                if m.ip_version is None:
                    continue
                self.gauge.labels(
                    client=m.hostname,
                    version=client.version,
                    ip_version=m.ip_version,
                    account="",
                    account_id=str(m.account_id or 0),
                    depenv=self.depenv,
                ).set(1)


class ClientRegistry:
    """The client map; every method is thread-safe."""

    def __init__(
        self,
        load_monitors: MonitorLoader,
        clock: Clock,
        gauge: MonitorsConnectedGauge | None = None,
    ) -> None:
        self._load_monitors = load_monitors
        self._clock = clock
        self._gauge = gauge
        self._lock = threading.Lock()
        self._clients: dict[str, ClientState] = {}

    def apply_status(self, key: str, status: StatusMessage) -> ClientState:
        """Record one decoded status message of client ``key``."""
        with self._lock:
            state = self._clients.get(key) or ClientState(key)
        if status.online:
            state = replace(
                state,
                online=True,
                last_seen=self._clock.now(),
                version_info=dict(status.version_info),
                updated_mq=status.updated_mq,
            )
            state = self._with_monitors(state)
        else:
            state = replace(state, online=False)
        with self._lock:
            self._clients[key] = state
            snapshot = list(self._clients.values())
        if self._gauge is not None:
            self._gauge.rebuild(snapshot)
        return state

    def _with_monitors(self, state: ClientState) -> ClientState:
        try:
            rows = tuple(self._load_monitors(state.key))
        except Exception:
            log.exception("loading monitor rows failed", extra={"client": state.key})
            return state
        if not rows:
            return state
        return replace(state, monitors=rows, name=rows[0].tls_name or state.key)

    def get(self, key: str) -> ClientState | None:
        with self._lock:
            return self._clients.get(key)

    def snapshot(self) -> list[ClientState]:
        with self._lock:
            return list(self._clients.values())

    def with_monitor_data(self) -> list[ClientState]:
        return [c for c in self.snapshot() if c.monitors]

    def adhoc_targets(self, ip_version: str) -> list[ClientState]:
        """Online agents with a monitor row of ``ip_version`` on a version that can check."""
        return [
            c
            for c in self.with_monitor_data()
            if c.online
            and any(m.ip_version == ip_version for m in c.monitors)
            and supports_adhoc(c.version)
        ]

    def metrics_discovery(self) -> list[dict[str, Any]]:
        """Prometheus HTTP service discovery groups (api.md §11.3)."""
        groups: list[dict[str, Any]] = []
        for c in self.with_monitor_data():
            if not c.online or not supports_metrics(c.version):
                continue
            for m in c.monitors:
                groups.append(
                    {
                        "targets": [c.name],
                        "labels": {
                            "account": account_label(c.name),
                            "ip_version": m.ip_version or "",
                        },
                    }
                )
        return groups
