"""The traceroute over a real multi-hop path: client → router1 → router2 → NTP server.

Every path is made of network namespaces this module creates (documentation addresses only)
and deletes again. The trace runs as ``nobody`` inside the client namespace, through the same
command line an operator would use, so "no root, no external binary" is what is tested.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from ntpmon.testing.netns import (
    Chain,
    namespaces,
    ns_run,
    ntp_server,
    python_command,
    router_chain,
    silence_icmp_errors,
)
from ntpmon.traceroute.result import from_json

FAMILIES = (4, 6)
FAST = ("--probe-timeout", "0.5", "--budget", "10")


def run_trace(chain: Chain, target: str, *args: str) -> dict[str, Any]:
    """``python -m ntpmon.traceroute`` as nobody in the client namespace; its JSON."""
    command = python_command(chain.client, "ntpmon.traceroute", target, *FAST, *args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    from_json(doc)  # what an agent publishes must pass monitor-api's validation
    return doc


def addresses(doc: dict[str, Any]) -> list[str | None]:
    return [hop["addr"] for hop in doc["hops"]]


@pytest.fixture(scope="module")
def path() -> Iterator[Chain]:
    with router_chain() as chain, ntp_server(chain):
        yield chain


@pytest.fixture(scope="module")
def path_with_silent_router() -> Iterator[Chain]:
    """The same path, but router2 sends no ICMP errors at all."""
    with router_chain() as chain, ntp_server(chain):
        silence_icmp_errors(chain.routers[1])
        yield chain


@pytest.mark.parametrize("family", FAMILIES, ids=("ipv4", "ipv6"))
def test_every_hop_and_the_destination(path: Chain, family: int) -> None:
    doc = run_trace(path, path.server_address(family))
    assert addresses(doc) == path.hop_addresses(family)
    assert doc["reached"] is True
    assert doc["stop"] == "reached"
    assert [hop.get("reached", False) for hop in doc["hops"]] == [False, False, True]
    for hop in doc["hops"]:
        assert any(rtt is not None for rtt in hop["rtt_us"]), hop
    assert doc["source"] == path.links[0].left_v6 if family == 6 else path.links[0].left_v4


@pytest.mark.parametrize("family", FAMILIES, ids=("ipv4", "ipv6"))
def test_a_router_that_sends_no_icmp_is_a_gap(path_with_silent_router: Chain, family: int) -> None:
    chain = path_with_silent_router
    doc = run_trace(chain, chain.server_address(family))
    first, _silent, server = chain.hop_addresses(family)
    assert addresses(doc) == [first, None, server]
    assert doc["hops"][1]["rtt_us"] == [None, None, None]
    assert doc["reached"] is True
    assert doc["stop"] == "reached"


@pytest.mark.parametrize("family", FAMILIES, ids=("ipv4", "ipv6"))
def test_closed_port_counts_as_reached(path: Chain, family: int) -> None:
    """Nothing listens on port 124: the server's port-unreachable still proves the path."""
    doc = run_trace(path, path.server_address(family), "--port", "124")
    assert addresses(doc) == path.hop_addresses(family)
    assert doc["hops"][-1]["reached"] is True
    assert doc["port"] == 124


@pytest.fixture
def fresh_path() -> Iterator[Chain]:
    """A path of its own: no ICMP sent on it yet (see ``router_chain`` on IPv4's error tokens)."""
    with router_chain() as chain, ntp_server(chain):
        yield chain


@pytest.mark.parametrize("family", FAMILIES, ids=("ipv4", "ipv6"))
def test_unreachable_route_ends_the_path_at_that_router(fresh_path: Chain, family: int) -> None:
    path = fresh_path
    router2 = path.routers[1]
    if family == 4:
        target, prefix = "203.0.113.200", "203.0.113.192/26"
        ns_run(router2, "ip", "route", "add", "unreachable", prefix)
    else:
        target, prefix = "2001:db8:3::105", "2001:db8:3::100/120"
        ns_run(router2, "ip", "-6", "route", "add", "unreachable", prefix)
    try:
        doc = run_trace(path, target)
    finally:
        ns_run(router2, "ip", f"-{family}", "route", "del", "unreachable", prefix)
    assert addresses(doc) == path.hop_addresses(family)[:2]
    assert doc["stop"] == "unreachable"
    assert doc["reached"] is False
    assert doc["hops"][-1]["note"] == "unreachable"


@pytest.mark.parametrize("family", FAMILIES, ids=("ipv4", "ipv6"))
def test_a_black_hole_stops_after_the_silent_hops(path: Chain, family: int) -> None:
    router2 = path.routers[1]
    if family == 4:
        target, prefix = "203.0.113.130", "203.0.113.128/26"
    else:
        target, prefix = "2001:db8:3::205", "2001:db8:3::200/120"
    ns_run(router2, "ip", f"-{family}", "route", "add", "blackhole", prefix)
    try:
        doc = run_trace(path, target, "--max-silent", "2")
    finally:
        ns_run(router2, "ip", f"-{family}", "route", "del", "blackhole", prefix)
    assert addresses(doc) == [path.hop_addresses(family)[0], None, None]
    assert doc["stop"] == "silent"
    assert doc["reached"] is False


def test_namespaces_are_removed_afterwards() -> None:
    with router_chain() as chain:
        names = set(chain.namespaces)
        assert names <= namespaces()
    assert not names & namespaces()
