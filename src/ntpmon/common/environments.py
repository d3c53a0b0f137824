"""Deployment environments (devel, test, prod), their host names and monitor-name rules.

Host names can be overridden by environment variables so an operator can run ntpmon under
their own domain (DESIGN.md, "Trust between agent and API").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ntpmon.common.errors import NtpmonError

MONITOR_NAME_SUFFIX = ".mon.ntppool.dev"
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SPECIAL_DEVEL_SUBJECTS = frozenset(
    {"monitor-api-dev.ntppool.net", "mqtt-admin.mon.ntppool.dev", "exporter.mqtt.ntppool.net"}
)


class DeployEnv(StrEnum):
    DEVEL = "devel"
    TEST = "test"
    PROD = "prod"


_ALIASES = {
    "devel": DeployEnv.DEVEL,
    "dev": DeployEnv.DEVEL,
    "test": DeployEnv.TEST,
    "beta": DeployEnv.TEST,
    "prod": DeployEnv.PROD,
}


@dataclass(frozen=True, slots=True)
class EnvHosts:
    """Where an environment's services live."""

    api_host: str
    monitor_api_host: str
    mqtt_prefix: str
    otlp_endpoint: str
    """The OTLP/HTTP collector the agent exports its telemetry to (agent.md §14)."""


_DEFAULT_HOSTS = {
    DeployEnv.DEVEL: EnvHosts(
        "https://dev-api.ntppool.dev",
        "https://api.devel.mon.ntppool.dev",
        "/devel/monitors",
        "https://api-buzz.devel.mon.ntppool.dev:4318",
    ),
    DeployEnv.TEST: EnvHosts(
        "https://beta-api.ntppool.dev",
        "https://api.test.mon.ntppool.dev",
        "/test/monitors",
        "https://api-buzz.test.mon.ntppool.dev:4318",
    ),
    DeployEnv.PROD: EnvHosts(
        "https://api.ntppool.dev",
        "https://api.mon.ntppool.dev",
        "/prod/monitors",
        "https://api-buzz.mon.ntppool.dev:4318",
    ),
}


class DeployEnvError(NtpmonError, ValueError):
    """A deployment environment or monitor name that cannot be used."""


def parse_env(value: str) -> DeployEnv:
    """Accept the canonical names plus upstream's aliases ``dev`` and ``beta``."""
    try:
        return _ALIASES[value.strip().lower()]
    except KeyError:
        raise DeployEnvError(
            f"invalid deployment environment {value!r} (expected devel, test or prod)"
        ) from None


def hosts_for(env: DeployEnv, environ: Mapping[str, str] | None = None) -> EnvHosts:
    """The hosts of ``env``; ``API_HOST`` and ``DEVEL_API_SERVER`` override as upstream does,
    and OpenTelemetry's own ``OTEL_EXPORTER_OTLP_ENDPOINT`` the collector."""
    environ = os.environ if environ is None else environ
    base = _DEFAULT_HOSTS[env]
    api_host = environ.get("API_HOST") or base.api_host
    monitor_api = environ.get("DEVEL_API_SERVER") or base.monitor_api_host
    otlp = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or base.otlp_endpoint
    return EnvHosts(api_host, monitor_api, base.mqtt_prefix, otlp)


def is_valid_monitor_name(name: str) -> bool:
    """Whether ``name`` may be accepted as a certificate identity (api.md §2.2)."""
    if not name.endswith(MONITOR_NAME_SUFFIX):
        return False
    if not len(MONITOR_NAME_SUFFIX) + 2 <= len(name) <= 253 or "*" in name:
        return False
    labels = name.split(".")
    return len(labels) == 5 and all(_LABEL.match(label) for label in labels)


def env_from_name(name: str) -> DeployEnv:
    """The environment encoded in a monitor name such as ``host.devel.mon.ntppool.dev``."""
    lowered = name.lower()
    if lowered in _SPECIAL_DEVEL_SUBJECTS:
        return DeployEnv.DEVEL
    if not lowered.endswith(MONITOR_NAME_SUFFIX):
        raise DeployEnvError(f"{name!r} is not a monitor name (*{MONITOR_NAME_SUFFIX})")
    if lowered == "api" + MONITOR_NAME_SUFFIX:
        return DeployEnv.PROD
    parts = lowered[: -len(MONITOR_NAME_SUFFIX)].split(".")
    if len(parts) != 2:
        raise DeployEnvError(f"{name!r} must look like host.env{MONITOR_NAME_SUFFIX}")
    if parts[1] not in {e.value for e in DeployEnv}:
        raise DeployEnvError(f"{name!r} names an unknown environment {parts[1]!r}")
    return DeployEnv(parts[1])
