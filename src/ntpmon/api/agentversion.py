"""Agent versions: parsing the user agent and Go-semver comparisons (api.md §5.3, §10.6)."""

from __future__ import annotations

import re

_PREFIXES = ("ntppool-monitor/", "ntpmon/", "ntppool-agent/")
_SEMVER = re.compile(
    r"^v(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
SAFE_ZERO_OFFSET = "v3.8.5"


def version_from_user_agent(user_agent: str) -> str:
    """``<version>[/<commit>]`` of ``ntppool-agent/<version>[/<commit>] ...`` (issue 14).

    Everything from the first space on is dropped: the Go agent's build details, grpcio's
    `` grpc-python/...`` suffix, anything a proxy appends. Upstream's version checks split the
    stored value at ``/``, so only the bare version and commit may be stored.
    """
    value = user_agent.strip().split(" ", 1)[0]
    for prefix in _PREFIXES:
        value = value.removeprefix(prefix)
    return value


def _key(version: str) -> tuple[int, int, int, tuple[tuple[int, int | str], ...], int] | None:
    match = _SEMVER.match(version)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key: tuple[tuple[int, int | str], ...] = ()
        release = 1
    else:
        release = 0
        pre_key = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor or 0), int(patch or 0), pre_key, release


def _compare(a: str, b: str) -> int:
    ka, kb = _key(a), _key(b)
    if ka is None or kb is None:
        return (ka is not None) - (kb is not None)
    a_main, b_main = ka[:3], kb[:3]
    if a_main != b_main:
        return -1 if a_main < b_main else 1
    if ka[4] != kb[4]:
        return -1 if ka[4] < kb[4] else 1
    if ka[3] == kb[3]:
        return 0
    return -1 if ka[3] < kb[3] else 1


def check_version(version: str, minimum: str) -> bool:
    """``version >= minimum`` by Go semver; ``dev-snapshot`` passes; text after ``/`` ignored."""
    if version == "dev-snapshot":
        return True
    head = version.split("/", 1)[0].split(" ", 1)[0]
    return _compare(head, minimum) >= 0
