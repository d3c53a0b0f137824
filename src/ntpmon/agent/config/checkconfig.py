"""The operational config a worker gets from ``GetConfig`` (agent.md §10.2) and probes with.

``CheckConfig`` is what ``check_host`` reads: samples, the address to bind, plus the two
devel-only knobs (port, allow_loopback) that let tests probe responders on loopback.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field, replace

from ntpmon.agent.config.statefile import IPAddress
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb


def ip_from_bytes(raw: bytes) -> IPAddress | None:
    """4 bytes → IPv4; any other non-empty input → IPv6 (zero-padded to 16) [COMPAT]."""
    if not raw:
        return None
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    return ipaddress.IPv6Address(raw[:16].ljust(16, b"\0"))


def ip_to_bytes(ip: IPAddress) -> bytes:
    return ip.packed


@dataclass(frozen=True, slots=True)
class MQTTSettings:
    host: str = ""
    port: int = 0
    jwt: bytes = b""
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Probe settings: ``samples`` 0 means 3; ``ip_nat`` replaces ``ip`` as the bind address."""

    samples: int = 0
    ip: IPAddress | None = None
    ip_nat: IPAddress | None = None
    base_checks: tuple[str, ...] = ()
    mqtt: MQTTSettings | None = None
    otlp_log_level: str = ""
    port: int = 123
    allow_loopback: bool = False

    def source_address(self) -> str | None:
        """The local address probes bind to (NAT address first), None to let the OS pick."""
        if self.ip is None:
            return None
        return str(self.ip_nat or self.ip)


def apply_response(
    cfg: CheckConfig, resp: pb.GetConfigResponse, *, with_mqtt: bool = True
) -> CheckConfig:
    """The config after a GetConfig answer; a missing MQTT config keeps the previous one."""
    mqtt = cfg.mqtt
    if with_mqtt and resp.HasField("mqtt_config"):
        m = resp.mqtt_config
        mqtt = MQTTSettings(m.host.decode(), m.port, bytes(m.jwt), m.prefix.decode())
    return replace(
        cfg,
        samples=resp.samples,
        ip=ip_from_bytes(resp.ip_bytes),
        ip_nat=ip_from_bytes(resp.ip_nat_bytes),
        base_checks=tuple(b.decode() for b in resp.base_checks),
        mqtt=mqtt,
        otlp_log_level=resp.otlp_log_level if with_mqtt else cfg.otlp_log_level,
    )


@dataclass
class SharedCheckConfig:
    """A worker's current config, replaced whole (readers get a consistent snapshot)."""

    current: CheckConfig = field(default_factory=CheckConfig)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self) -> CheckConfig:
        with self._lock:
            return self.current

    def update(self, resp: pb.GetConfigResponse, *, with_mqtt: bool = True) -> CheckConfig:
        with self._lock:
            self.current = apply_response(self.current, resp, with_mqtt=with_mqtt)
            return self.current
