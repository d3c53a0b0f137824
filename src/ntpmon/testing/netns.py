"""A multi-hop path built from network namespaces, for the traceroute tests.

``client → router1 → router2 → server`` (routers forward IPv4 and IPv6), every link in a
documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), so no
probe can leave the host. Every namespace and veth gets a random suffix (tests run in parallel,
and other checkouts may run the same tests at the same time) and everything is deleted on exit:
deleting a namespace deletes its veth ends.

Needs root (``ip netns``); the traceroute under test runs unprivileged inside the client
namespace through :func:`netns_command`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

NOBODY = 65534
ICMP_SILENCE_MS = 3_600_000
"""An ICMP rate limit (ms) above the kernel's 60 s initial token bucket: the router sends none."""


@dataclass(frozen=True, slots=True)
class Link:
    """One veth pair between two namespaces, with each end's addresses."""

    left_ns: str
    right_ns: str
    left_v4: str
    right_v4: str
    left_v6: str
    right_v6: str
    prefix_v4: str
    prefix_v6: str


@dataclass(frozen=True, slots=True)
class Chain:
    """The namespaces in path order (client first, server last) and the links between them."""

    namespaces: tuple[str, ...]
    links: tuple[Link, ...]

    @property
    def client(self) -> str:
        return self.namespaces[0]

    @property
    def server(self) -> str:
        return self.namespaces[-1]

    @property
    def routers(self) -> tuple[str, ...]:
        return self.namespaces[1:-1]

    def server_address(self, family: int) -> str:
        last = self.links[-1]
        return last.right_v6 if family == 6 else last.right_v4

    def hop_addresses(self, family: int) -> list[str]:
        """What a traceroute from the client must see: each router's near side, then the server."""
        return [(link.right_v6 if family == 6 else link.right_v4) for link in self.links]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip ARGS`` (iproute2); raises on failure when ``check``."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return subprocess.run(  # noqa: S603 - fixed program, arguments built here
        [ip, *args], check=check, capture_output=True, text=True, timeout=30
    )


def ns_run(ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in namespace ``ns`` (as root); raises on failure."""
    return _ip("netns", "exec", ns, *cmd)


def namespaces() -> set[str]:
    """The names of every network namespace that exists now."""
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line}


def sysctl(ns: str, key: str, value: str | int) -> None:
    ns_run(ns, "sysctl", "-q", "-w", f"{key}={value}")


def netns_command(ns: str, argv: Sequence[str], *, unprivileged: bool = True) -> list[str]:
    """``argv`` run inside ``ns``, dropped to ``nobody`` unless told otherwise."""
    cmd = [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", ns]
    if unprivileged:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("setpriv (util-linux) is needed to drop root in the namespace")
        cmd += [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return [*cmd, *argv]


def python_command(ns: str, module: str, *args: str, unprivileged: bool = True) -> list[str]:
    """``python -m module args`` of this interpreter inside ``ns``."""
    return netns_command(ns, [sys.executable, "-m", module, *args], unprivileged=unprivileged)


def _link(index: int, left: str, right: str) -> Link:
    nets = ("192.0.2", "198.51.100", "203.0.113")
    return Link(
        left_ns=left,
        right_ns=right,
        left_v4=f"{nets[index]}.1",
        right_v4=f"{nets[index]}.2",
        left_v6=f"2001:db8:{index + 1}::1",
        right_v6=f"2001:db8:{index + 1}::2",
        prefix_v4=f"{nets[index]}.0/24",
        prefix_v6=f"2001:db8:{index + 1}::/64",
    )


def _wire(link: Link, tag: str, index: int) -> None:
    left_if, right_if = f"{tag}{index}a", f"{tag}{index}b"
    _ip("link", "add", left_if, "netns", link.left_ns, "type", "veth", "peer", "name", right_if)
    _ip("link", "set", right_if, "netns", link.right_ns)
    for ns, ifname, v4, v6 in (
        (link.left_ns, left_if, link.left_v4, link.left_v6),
        (link.right_ns, right_if, link.right_v4, link.right_v6),
    ):
        ns_run(ns, "ip", "addr", "add", f"{v4}/24", "dev", ifname)
        ns_run(ns, "ip", "-6", "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
        ns_run(ns, "ip", "link", "set", ifname, "up")


def _route_all(chain: Chain) -> None:
    """Each namespace reaches every link: towards the server via its right neighbour, else left."""
    links = chain.links
    for position, ns in enumerate(chain.namespaces):
        for target_index, target in enumerate(links):
            if target_index in (position - 1, position):
                continue  # directly connected
            if target_index > position:
                via4, via6 = links[position].right_v4, links[position].right_v6
            else:
                via4, via6 = links[position - 1].left_v4, links[position - 1].left_v6
            ns_run(ns, "ip", "route", "add", target.prefix_v4, "via", via4)
            ns_run(ns, "ip", "-6", "route", "add", target.prefix_v6, "via", via6)


@contextlib.contextmanager
def router_chain(routers: int = 2) -> Iterator[Chain]:
    """Build ``client → router1 … → server``; every namespace is deleted on exit."""
    if os.geteuid() != 0:
        raise PermissionError("network namespaces need root")
    tag = f"tr{secrets.token_hex(3)}"
    names = tuple(
        f"{tag}-{role}" for role in ("client", *(f"r{i + 1}" for i in range(routers)), "server")
    )
    created: list[str] = []
    try:
        for name in names:
            _ip("netns", "add", name)
            created.append(name)
            ns_run(name, "ip", "link", "set", "lo", "up")
        links = tuple(_link(i, names[i], names[i + 1]) for i in range(len(names) - 1))
        for index, link in enumerate(links):
            _wire(link, tag, index)
        chain = Chain(names, links)
        _route_all(chain)
        for router in chain.routers:
            sysctl(router, "net.ipv4.ip_forward", 1)
            sysctl(router, "net.ipv6.conf.all.forwarding", 1)
            # Deterministic tests: no ICMP rate limit on the routers unless a test silences one.
            # (IPv4 errors for unreachable routes are limited by the global, not per namespace,
            # net.ipv4.route.error_cost on the peer's tokens, which a limit of 0 leaves empty:
            # a test of those needs a path of its own.)
            sysctl(router, "net.ipv4.icmp_ratelimit", 0)
            sysctl(router, "net.ipv6.icmp.ratelimit", 0)
        yield chain
    finally:
        for name in reversed(created):
            _ip("netns", "del", name, check=False)


def silence_icmp_errors(ns: str) -> None:
    """Make router ``ns`` send no ICMP errors (time exceeded, unreachable) to anyone new.

    No iptables/nft is needed: the kernel's ICMP rate limiter starts each peer's token bucket at
    60 s worth of tokens, so a limit above that (and time exceeded/unreachable are in the
    default ratemask of both families) lets not even the first error through.
    """
    sysctl(ns, "net.ipv4.icmp_ratelimit", ICMP_SILENCE_MS)
    sysctl(ns, "net.ipv6.icmp.ratelimit", ICMP_SILENCE_MS * 16)


_WARM_UP = """
import sys, time
from ntpmon.ntp.sntp import NTPNetworkError, query
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        query(sys.argv[1], port=int(sys.argv[3]), timeout=0.3)
        break
    except NTPNetworkError:
        if time.monotonic() > deadline:
            raise
"""


@contextlib.contextmanager
def ntp_server(chain: Chain, port: int = 123, warm_up_s: float = 10.0) -> Iterator[None]:
    """An NTP responder in the server namespace on both families, answering the client.

    Returns once a query from the client namespace was answered on each family: that also
    resolves every neighbour (ARP/NDP) on the way and back, so the first probes of a test are
    not lost to address resolution (IPv6's first solicitation can otherwise time out).
    """
    argv = ["--listen", f"{chain.server_address(4)}:{port}"]
    argv += ["--listen", f"[{chain.server_address(6)}]:{port}"]
    command = python_command(chain.server, "ntpmon.testing.ntpserver", *argv, unprivileged=False)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - built here
    try:
        assert proc.stdout is not None
        for _ in range(2):
            if not proc.stdout.readline():
                raise RuntimeError("the NTP responder in the server namespace did not start")
        for family in (4, 6):
            address = chain.server_address(family)
            warm = [sys.executable, "-c", _WARM_UP, address, str(warm_up_s), str(port)]
            subprocess.run(  # noqa: S603 - our interpreter, arguments built here
                netns_command(chain.client, warm),
                check=True,
                capture_output=True,
                timeout=warm_up_s + 10,
            )
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
