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
TraceOutcome = tuple[Any, str]
"""(``TraceResult`` or None, error text) of one traceroute."""
TraceFn = Callable[[IPAddress], TraceOutcome]


class ProbeConfig(Protocol):
    """What :func:`adhoc_probe` needs of a worker's config (``CheckConfig`` fits)."""

    samples: int
    ip: IPAddress | None
    port: int

    def source_address(self) -> str | None: ...


def _matching(configs: Sequence[ProbeConfig], ip: IPAddress) -> ProbeConfig:
    """The config of the worker whose family matches ``ip``, else any (the list is not empty)."""
    same_family = [c for c in configs if c.ip is not None and c.ip.version == ip.version]
    return (same_family or list(configs))[0]


def run_traceroute(ip: IPAddress, cfg: ProbeConfig | None) -> TraceOutcome:
    """One trace to ``ip`` on the NTP port, from the monitor's source address when known."""
    from ntpmon.traceroute.engine import TraceError, TraceOptions, trace

    options = TraceOptions(
        port=cfg.port if cfg else 123,
        local_address=cfg.source_address() if cfg else None,
    )
    if cfg is not None and cfg.ip is not None and cfg.ip.version != ip.version:
        options = TraceOptions(port=options.port)  # no source of the target's family
    try:
        return trace(str(ip), options), ""
    except TraceError as exc:
        return None, str(exc)


def traceroute_fn(configs: Callable[[], Sequence[ProbeConfig]]) -> TraceFn:
    """The tracer the runner hands to :class:`AgentMqtt`, with the matching family's config."""

    def run(ip: IPAddress) -> TraceOutcome:
        available = list(configs())
        return run_traceroute(ip, _matching(available, ip) if available else None)

    return run


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
        return check(ip, replace(_matching(available, ip), samples=1))  # type: ignore[type-var]

    return probe
