"""Pure rules of ad-hoc checks through agents (api.md §11.1, §10.6, §18.7 #34).

Which agents may be asked, which target addresses are refused, when an answer is healthy, and
how an agent's answer is shaped for the HTTP reply. No I/O here.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ntpmon.api.agentversion import check_version
from ntpmon.common.errors import NtpmonError
from ntpmon.ntp.ipaddr import is_loopback, is_multicast, is_private

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ADHOC_MINIMUM = "v4.0.4"
ADHOC_LEGACY = ("v3.8.6", "v3.8.7")
METRICS_MINIMUM = "v3.6.0-rc3"
HEALTHY_ANSWERS_WANTED = 3

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


class TargetError(NtpmonError, ValueError):
    """An ad-hoc target that must not be checked (shown to the HTTP client as is)."""


def supports_adhoc(version: str) -> bool:
    """``v ≥ v4.0.4``, or exactly the v3.8.6 line (``≥ v3.8.6`` and not ``≥ v3.8.7``)."""
    if check_version(version, ADHOC_MINIMUM):
        return True
    low, high = ADHOC_LEGACY
    return check_version(version, low) and not check_version(version, high)


def supports_metrics(version: str) -> bool:
    return check_version(version, METRICS_MINIMUM)


def address_class(ip: IPAddress) -> str | None:
    """``loopback``/``private``/``multicast``/``unspecified`` address, or None when probeable.

    The classes are Go ``netip``'s (agent.md §11.2), narrower than ``ipaddress.is_private``.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if is_loopback(ip):
        return "loopback address"
    if is_private(ip):
        return "private address"
    if is_multicast(ip):
        return "multicast address"
    if ip.is_unspecified:
        return "unspecified address"
    return None


def parse_target(text: str, *, allow_private: bool = False) -> IPAddress:
    """The ``{ip}`` of ``POST /check/ntp/{ip}``; raises :class:`TargetError` with the reason.

    ``allow_private`` exists for devel deployments and tests whose NTP responders run on
    loopback; production never sets it.
    """
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise TargetError(f"invalid IP address {text!r}") from None
    reason = address_class(ip)
    if reason is not None and not allow_private:
        raise TargetError(f"{ip} is a {reason}; only public addresses can be checked")
    return ip


def target_ip_version(ip: IPAddress) -> str:
    """``v6`` for IPv6 (IPv4-mapped included), else ``v4``."""
    return "v6" if ip.version == 6 else "v4"


def parse_go_bool(value: str | None) -> bool:
    """Go ``strconv.ParseBool`` where anything invalid counts as false."""
    return value in _GO_TRUE


def is_healthy(answer: dict[str, Any]) -> bool:
    """An answer with an NTP reply, no error, ``Leap < 4`` and ``0 < Stratum < 8``."""
    ntp = answer.get("NTP")
    if answer.get("Error") or not isinstance(ntp, dict):
        return False
    leap, stratum = ntp.get("Leap", 0), ntp.get("Stratum", 0)
    if not isinstance(leap, int) or not isinstance(stratum, int):
        return False
    return leap < 4 and 0 < stratum < 8


def server_label(name: str) -> str:
    """``uspao1-21wase0`` of ``uspao1-21wase0.devel.mon.ntppool.dev``."""
    return name.split(".", 1)[0]


def account_label(name: str) -> str:
    """The part of the first label after its first ``-`` (``21wase0``), "" if none."""
    first = server_label(name)
    return first.split("-", 1)[1] if "-" in first else ""


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """One agent's answer as the HTTP reply shows it (empty fields omitted)."""

    server: str
    ntp: dict[str, Any] | None
    error: str

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.server:
            doc["Server"] = self.server
        if self.ntp:
            doc["NTP"] = self.ntp
        if self.error:
            doc["Error"] = self.error
        return doc

    def healthy(self) -> bool:
        return is_healthy({"NTP": self.ntp, "Error": self.error})


def decode_answer(name: str, payload: bytes) -> AgentAnswer | None:
    """An agent's ``{"NTP":...,"Error":...}``; None when the payload is not such an object."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    ntp = doc.get("NTP")
    error = doc.get("Error") or ""
    if (ntp is not None and not isinstance(ntp, dict)) or not isinstance(error, str):
        return None
    return AgentAnswer(server_label(name), ntp, error)
