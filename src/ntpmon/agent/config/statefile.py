"""The ``state.json`` format (agent.md §5.2) as plain data with pure encode/decode functions.

The key order and the ``DataSha`` digest are [COMPAT]: upstream agents and tools read the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field, replace
from typing import Any

from ntpmon.common.errors import NtpmonError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LIVE_STATUSES = frozenset({"active", "testing"})


class StateFormatError(NtpmonError):
    """``state.json`` exists but is not a state file we can use."""


@dataclass(frozen=True, slots=True)
class IPConfig:
    """One IP version's monitor address and its status on the server."""

    status: str = ""
    ip: IPAddress | None = None

    def is_live(self) -> bool:
        """Work runs only for an address whose status is ``active`` or ``testing``."""
        return self.ip is not None and self.status in LIVE_STATUSES

    def as_json(self) -> dict[str, Any]:
        if self.ip is None:
            return {"Status": "", "IP": None}
        return {"Status": self.status, "IP": str(self.ip)}


@dataclass(frozen=True, slots=True)
class MonitorData:
    """The ``Data`` object: what the management API said about this monitor."""

    name: str = ""
    tls_name: str = ""
    ipv4: IPConfig = field(default_factory=IPConfig)
    ipv6: IPConfig = field(default_factory=IPConfig)
    otlp_log_level: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "TLSName": self.tls_name,
            "IPv4": self.ipv4.as_json(),
            "IPv6": self.ipv6.as_json(),
            "OtlpLogLevel": self.otlp_log_level,
        }

    def ip_config(self, family: int) -> IPConfig:
        return self.ipv4 if family == 4 else self.ipv6


@dataclass(frozen=True, slots=True)
class State:
    """Everything ``state.json`` holds."""

    api_key: str = ""
    data: MonitorData = field(default_factory=MonitorData)
    data_sha: str = ""


def data_sha(data: dict[str, Any]) -> str:
    """Lower-case hex SHA-256 of the compact JSON of ``Data`` (same key order)."""
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(compact.encode()).hexdigest()


def encode_state(state: State) -> bytes:
    """Pretty-printed JSON with a 2-space indent and the key order of §5.2."""
    doc = {
        "API": {"APIKey": state.api_key},
        "Data": state.data.as_json(),
        "DataSha": state.data_sha,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def parse_ip(text: Any, family: int, where: str) -> IPAddress | None:
    """An address of the given family, None for empty/null; anything else is an error."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise StateFormatError(f"{where}: IP must be a string")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise StateFormatError(f"{where}: invalid IP {text!r}") from None
    if addr.version != family:
        raise StateFormatError(f"{where}: {text!r} is not an IPv{family} address")
    return addr


def _merge_ip(old: IPConfig, doc: Any, family: int, where: str) -> IPConfig:
    if not isinstance(doc, dict):
        raise StateFormatError(f"{where} must be an object")
    status = doc.get("Status", old.status)
    if not isinstance(status, str):
        raise StateFormatError(f"{where}.Status must be a string")
    ip = parse_ip(doc["IP"], family, where) if "IP" in doc else old.ip
    return IPConfig(status, ip)


def _string(doc: dict[str, Any], key: str, old: str, where: str) -> str:
    value = doc.get(key, old)
    if not isinstance(value, str):
        raise StateFormatError(f"{where}.{key} must be a string")
    return value


def decode_state(raw: bytes, current: State, *, source: str = "state.json") -> State:
    """Merge a file's content over ``current``: missing keys keep their values (§5.2).

    Empty, truncated or otherwise invalid content raises StateFormatError naming the file.
    """
    try:
        return _decode_state(raw, current, source)
    except StateFormatError as exc:
        if str(exc).startswith(source):
            raise
        raise StateFormatError(f"{source}: {exc}") from None


def _decode_state(raw: bytes, current: State, source: str) -> State:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFormatError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StateFormatError(f"{source} must hold a JSON object")
    api = doc.get("API", {})
    data_doc = doc.get("Data", {})
    if not isinstance(api, dict) or not isinstance(data_doc, dict):
        raise StateFormatError(f"{source}: API and Data must be objects")
    old = current.data
    data = replace(
        old,
        name=_string(data_doc, "Name", old.name, "Data"),
        tls_name=_string(data_doc, "TLSName", old.tls_name, "Data"),
        ipv4=_merge_ip(old.ipv4, data_doc["IPv4"], 4, "Data.IPv4")
        if "IPv4" in data_doc
        else old.ipv4,
        ipv6=_merge_ip(old.ipv6, data_doc["IPv6"], 6, "Data.IPv6")
        if "IPv6" in data_doc
        else old.ipv6,
        otlp_log_level=_string(data_doc, "OtlpLogLevel", old.otlp_log_level, "Data"),
    )
    return State(
        api_key=_string(api, "APIKey", current.api_key, "API"),
        data=data,
        data_sha=_string(doc, "DataSha", current.data_sha, "state"),
    )
