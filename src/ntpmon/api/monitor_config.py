"""A monitor's effective configuration and the scheduling settings (api.md §9).

Pure functions: the JSON Merge Patch of the system defaults with the monitor's own config,
decoding of the four known keys (case-insensitively, like Go), and the ``monitors`` system
setting with its per-field defaults.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any

from ntpmon.api.godurations import parse_go_duration

log = logging.getLogger(__name__)

SETTINGS_KEY = "monitors"
DEFAULT_INTERVAL_ACTIVE = 9 * 60
DEFAULT_INTERVAL_TESTING = 45 * 60
DEFAULT_INTERVAL_ALL = 60
DEFAULT_BATCH_SIZE = 10
DEFAULT_TRACEROUTE_INTERVAL = 3600
REQUEUE_ALWAYS_AFTER = 120 * 60


class MonitorConfigError(ValueError):
    """A stored monitor configuration that cannot be used (the RPC answers INTERNAL)."""


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """The decoded configuration an agent receives."""

    samples: int = 0
    nat_ip: str = ""
    base_checks: tuple[str, ...] = ()
    otlp_log_level: str = ""


@dataclass(frozen=True, slots=True)
class Schedule:
    """Scheduling settings in whole seconds, with the batch size."""

    interval_active: int = DEFAULT_INTERVAL_ACTIVE
    interval_testing: int = DEFAULT_INTERVAL_TESTING
    interval_all: int = DEFAULT_INTERVAL_ALL
    batch_size: int = DEFAULT_BATCH_SIZE
    traceroute_interval: int = DEFAULT_TRACEROUTE_INTERVAL
    """At most one health-change traceroute per server and monitor this often (issue 17)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: patch keys win, ``null`` deletes."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _load_object(text: str, what: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MonitorConfigError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MonitorConfigError(f"{what} is not a JSON object")
    return value


def _lookup(doc: dict[str, Any], name: str) -> Any:
    """Go's encoding/json field matching: an exact key first, then any case-folded match."""
    if name in doc:
        return doc[name]
    for key, value in doc.items():
        if key.lower() == name:
            return value
    return None


def decode_config(doc: dict[str, Any]) -> MonitorConfig:
    """Typed view of the merged JSON; a type mismatch is an error, as in Go."""
    samples = _lookup(doc, "samples")
    nat_ip = _lookup(doc, "nat_ip")
    base_checks = _lookup(doc, "base_checks")
    level = _lookup(doc, "otlp_log_level")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool)):
        raise MonitorConfigError("samples must be an integer")
    if nat_ip is not None and not isinstance(nat_ip, str):
        raise MonitorConfigError("nat_ip must be a string")
    if base_checks is not None and (
        not isinstance(base_checks, list) or not all(isinstance(x, str) for x in base_checks)
    ):
        raise MonitorConfigError("base_checks must be a list of strings")
    if level is not None and not isinstance(level, str):
        raise MonitorConfigError("otlp_log_level must be a string")
    if nat_ip:
        try:
            ipaddress.ip_address(nat_ip)
        except ValueError:
            raise MonitorConfigError(f"nat_ip {nat_ip!r} is not an IP address") from None
    return MonitorConfig(
        samples=samples or 0,
        nat_ip=nat_ip or "",
        base_checks=tuple(base_checks or ()),
        otlp_log_level=level or "",
    )


def effective_config(monitor_config: str, defaults: str | None) -> MonitorConfig:
    """The monitor's config merged over the system defaults (None = no single defaults row)."""
    own = _load_object(monitor_config, "monitor config")
    if defaults is None:
        return decode_config(own)
    base = _load_object(defaults, "system monitor config")
    return decode_config(merge_patch(base, own))


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1e9  # a JSON number is nanoseconds (Go's time.Duration)
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError:
            return None
    return None


def _interval(doc: dict[str, Any], key: str, minimum: int, default: int) -> int:
    seconds = _seconds(doc.get(key))
    if seconds is None or seconds < minimum:
        return default
    return int(seconds)


def parse_schedule(value: str | None) -> Schedule:
    """The ``monitors`` system setting; a missing row, bad JSON or bad field → defaults."""
    if value is None:
        return Schedule()
    try:
        doc = json.loads(value)
    except ValueError:
        log.warning("system setting 'monitors' is not JSON; using defaults")
        return Schedule()
    if not isinstance(doc, dict):
        return Schedule()
    batch = doc.get("batch_size")
    batch_size = (
        batch
        if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0
        else DEFAULT_BATCH_SIZE
    )
    return Schedule(
        interval_active=_interval(doc, "interval_active", 20, DEFAULT_INTERVAL_ACTIVE),
        interval_testing=_interval(doc, "interval_testing", 60, DEFAULT_INTERVAL_TESTING),
        interval_all=_interval(doc, "interval_all", 10, DEFAULT_INTERVAL_ALL),
        batch_size=batch_size,
        traceroute_interval=_interval(doc, "traceroute_interval", 60, DEFAULT_TRACEROUTE_INTERVAL),
    )
