"""The agent's monitor-API client: one interface (:class:`~.base.MonitorClient`), two protocols.

``connect`` (the default, as the Go agent) is the standard library's HTTP/1.1; ``grpc`` is
grpcio, imported only when chosen, so a Connect agent never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.transport.base import MonitorClient, RPCError

PROTOCOLS = ("connect", "grpc")
DEFAULT_PROTOCOL = "connect"


@dataclass(frozen=True, slots=True)
class RPCSettings:
    """How the agent reaches monitor-api: ``--rpc-protocol``, ``--rpc-ca-file``, ``--ca-file``."""

    protocol: str = DEFAULT_PROTOCOL
    rpc_ca_file: str | None = None
    ca_file: str | None = None


def check_protocol(protocol: str) -> str:
    """``protocol`` when it is one the agent speaks; the error names the choices."""
    if protocol not in PROTOCOLS:
        raise RPCError(f"unknown RPC protocol {protocol!r} (use {' or '.join(PROTOCOLS)})")
    return protocol


def open_monitor_client(
    settings: RPCSettings, cfg: AppConfig, base_url: str, **options: Any
) -> MonitorClient:
    """A client for ``settings.protocol``; ``options`` are :class:`MonitorClient`'s keywords."""
    trust = {"ca_file": settings.ca_file, "rpc_ca_file": settings.rpc_ca_file}
    if check_protocol(settings.protocol) == "grpc":
        from ntpmon.agent.transport.grpcclient import GrpcMonitorClient

        return GrpcMonitorClient(cfg, base_url, **trust, **options)
    from ntpmon.agent.transport.connect import ConnectMonitorClient

    return ConnectMonitorClient(cfg, base_url, **trust, **options)
