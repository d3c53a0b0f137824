"""The agent's view of deployment environments (agent.md §3), over ``ntpmon.common.environments``.

The management API host follows ``--env`` (``API_HOST`` overrides it); the monitor API host
follows the environment encoded in the monitor's TLS name (``DEVEL_API_SERVER`` overrides it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ntpmon.common.environments import DeployEnv, DeployEnvError, env_from_name, hosts_for
from ntpmon.common.environments import parse_env as _parse_env

DeploymentEnv = DeployEnv

__all__ = [
    "DeployEnvError",
    "DeploymentEnv",
    "api_host",
    "api_url",
    "env_from_tls_name",
    "monitor_api_host",
    "parse_env",
    "registration_url",
]


def parse_env(s: str) -> DeploymentEnv:
    """``devel``/``test``/``prod`` plus the aliases ``dev`` and ``beta``; ValueError otherwise."""
    return _parse_env(s)


def api_host(env: DeploymentEnv, environ: Mapping[str, str] | None = None) -> str:
    """The management API base URL; ``API_HOST`` replaces it verbatim when set."""
    return hosts_for(env, os.environ if environ is None else environ).api_host


def monitor_api_host(env: DeploymentEnv, environ: Mapping[str, str] | None = None) -> str:
    """The monitor (gRPC) API base URL; ``DEVEL_API_SERVER`` replaces it verbatim when set."""
    return hosts_for(env, os.environ if environ is None else environ).monitor_api_host


def env_from_tls_name(name: str) -> DeploymentEnv:
    """The environment in ``<host>.<env>.mon.ntppool.dev``; ValueError for anything else."""
    return env_from_name(name)


def api_url(base: str, path: str) -> str:
    """``<base>/<path>`` with a ``/`` added to the base when missing (config and token URLs)."""
    return (base if base.endswith("/") else base + "/") + path.lstrip("/")


def registration_url(base: str) -> str:
    """Upstream joins the registration path without normalising the base [QUIRK, harmless]."""
    return base + "/monitor/api/registration"
