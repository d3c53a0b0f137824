"""The ad-hoc probe seam between the agent's MQTT client and its workers (agent.md §13.4).

It lives apart from both :mod:`ntpmon.agent.mqtt.client` (which calls a probe) and
:mod:`ntpmon.agent.mqtt.bridge` (which builds one from the workers' configs), so the two import
this module and never each other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (status, response, error) as returned by ntpmon.ntp.check.check_host
CheckOutcome = tuple[Any, Any, str | None]
AdhocProbe = Callable[[IPAddress], CheckOutcome | None]
CheckFn = Callable[..., CheckOutcome]
"""``check_host``: called as ``check(ip, cfg, instruments=...)`` by the bridge."""


class ProbeConfig(Protocol):
    """What :func:`adhoc_probe` needs of a worker's config (``CheckConfig`` fits)."""

    samples: int
    ip: IPAddress | None


def adhoc_probe(
    configs: Callable[[], Sequence[ProbeConfig]],
    check: Callable[[IPAddress, Any], CheckOutcome],
) -> AdhocProbe:
    """The ad-hoc probe the runner hands to :class:`AgentMqtt`.

    It uses the config of the worker whose family matches the target (upstream used whichever
    was fetched last [QUIRK fixed]), falls back to any config, and probes with one sample on a
    copy (upstream mutated the shared config [QUIRK fixed]). No config yet → None (dropped).
    """

    def probe(ip: IPAddress) -> CheckOutcome | None:
        available = list(configs())
        if not available:
            return None
        same_family = [c for c in available if c.ip is not None and c.ip.version == ip.version]
        cfg = (same_family or available)[0]
        return check(ip, replace(cfg, samples=1))  # type: ignore[type-var]

    return probe
