"""The traceroute itself: unprivileged UDP probes to the NTP port, answers from the error queue.

Why this shape:

* **No root, no binary.** A plain UDP socket may set its TTL / hop limit and ``IP_RECVERR``; the
  kernel then queues the ICMP time-exceeded / unreachable errors that quote its datagrams on
  that socket's error queue, with the router's address (:mod:`.errqueue`). No raw socket needed.
* **One socket per probe.** Routers must quote only 8 bytes of the UDP datagram (RFC 792), so a
  probe cannot be told apart by its payload. The kernel matches an ICMP error to the socket by
  the quoted UDP header, so a socket of its own (its own source port) identifies each probe.
* **Real NTP requests to the NTP port.** The last hop is the NTP server: a request it answers
  (or its port-unreachable, when nothing listens) proves the destination was reached along the
  same path the monitor's checks take; a port no firewall lets through would prove nothing.
* **One TTL at a time.** All probes of a TTL go out together and the next TTL starts when they
  are answered or time out, so the NTP server sees only ``probes_per_hop`` requests per trace
  (sending every TTL at once would send it one request per TTL beyond its distance).
* **Kernel timestamps.** ``SO_TIMESTAMPING`` stamps the probe when it leaves (its TX stamp lands
  on the same error queue) and the ICMP error or reply when it arrives; a probe without both
  stamps falls back to the monotonic clock around ``send``/``poll`` and says so.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ntpmon.common.errors import NtpmonError
from ntpmon.ntp.kerneltime import ANCILLARY_BUFSIZE, Stamping, enable_stamping
from ntpmon.ntp.kerneltime import stamp_from_ancillary as kernel_stamp
from ntpmon.ntp.sntp import NTPNetworkError, bind_source, build_request, resolve_target
from ntpmon.traceroute.errqueue import (
    ErrKind,
    enable_recverr,
    extended_err_from_ancillary,
    set_hop_limit,
)
from ntpmon.traceroute.result import (
    ProbeOutcome,
    StopReason,
    TraceResult,
    assemble_hops,
    stamping_of,
    stop_reason,
)

log = logging.getLogger(__name__)

RECV_BUFSIZE = 512
_POLL_MASK = select.POLLIN | select.POLLERR


class TraceError(NtpmonError):
    """The trace could not start at all (no route, unusable source address, bad target)."""


@dataclass(frozen=True, slots=True)
class TraceOptions:
    """Budgets and knobs; the defaults keep a trace under ``time_budget_s`` and gentle.

    ``max_silent`` consecutive gaps end the trace early (the rest of the path filters ICMP).
    """

    port: int = 123
    max_hops: int = 30
    probes_per_hop: int = 3
    probe_timeout_s: float = 1.0
    time_budget_s: float = 15.0
    max_silent: int = 5
    local_address: str | None = None
    stamping: Stamping = Stamping.KERNEL


@dataclass
class _Probe:
    """The mutable state of one probe while its TTL is in flight (local to one trace)."""

    ttl: int
    sock: socket.socket
    target: str
    sent_mono_ns: int = 0
    tx_kernel_ns: int | None = None
    responder: str | None = None
    kind: ErrKind | None = None
    answered: bool = False
    rtt: tuple[int, bool] | None = field(default=None)

    def answer(self, responder: str, kind: ErrKind | None, rx_kernel_ns: int | None) -> None:
        """Record the first answer; the RTT uses kernel stamps only when both ends have one."""
        if self.answered:
            return
        now = time.monotonic_ns()
        self.answered, self.responder, self.kind = True, responder, kind
        if self.tx_kernel_ns is not None and rx_kernel_ns is not None:
            self.rtt = (max(0, rx_kernel_ns - self.tx_kernel_ns), True)
        else:
            self.rtt = (max(0, now - self.sent_mono_ns), False)

    def outcome(self) -> ProbeOutcome:
        if not self.answered or self.rtt is None:
            return ProbeOutcome(self.ttl, None, None, None)
        rtt_ns, kernel = self.rtt
        return ProbeOutcome(self.ttl, self.responder, self.kind, rtt_ns, kernel)


def _open_probe(
    family: socket.AddressFamily, sockaddr: tuple, ttl: int, target: str, options: TraceOptions
) -> _Probe:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        enable_stamping(sock, options.stamping)
        enable_recverr(sock, family)
        set_hop_limit(sock, family, ttl)
        if options.local_address:
            bind_source(sock, family, options.local_address)
        sock.connect(sockaddr)
        sock.setblocking(False)
    except NTPNetworkError as exc:
        sock.close()
        raise TraceError(str(exc)) from None
    except OSError as exc:
        sock.close()
        raise TraceError(f"connect: {exc.strerror or exc}") from None
    return _Probe(ttl, sock, target)


def _drain_errqueue(probe: _Probe) -> None:
    """Read every queued error/timestamp of ``probe``'s socket without blocking."""
    while True:
        try:
            _data, ancdata, _flags, _addr = probe.sock.recvmsg(
                RECV_BUFSIZE, ANCILLARY_BUFSIZE, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        err = extended_err_from_ancillary(ancdata)
        if err is None:
            continue
        if err.kind is ErrKind.TX_STAMP:
            probe.tx_kernel_ns = kernel_stamp(ancdata)
        elif err.kind is ErrKind.LOCAL or err.offender is None:
            log.debug("local error on a probe", extra={"ttl": probe.ttl, "errno": err.errno})
        else:
            probe.answer(err.offender, err.kind, kernel_stamp(ancdata))


def _read_reply(probe: _Probe) -> None:
    """A datagram on the connected socket can only come from the destination: reached."""
    try:
        _data, ancdata, _flags, _addr = probe.sock.recvmsg(RECV_BUFSIZE, ANCILLARY_BUFSIZE)
    except OSError:
        _drain_errqueue(probe)  # a pending ICMP error surfaces as an exception here
        return
    probe.answer(probe.target, None, kernel_stamp(ancdata))


def _run_ttl(probes: list[_Probe], until_mono: float) -> None:
    """Send every probe of one TTL, then collect answers until all came or ``until_mono``."""
    poller = select.poll()
    by_fd = {}
    for probe in probes:
        request, _nonce = build_request()
        probe.sent_mono_ns = time.monotonic_ns()
        try:
            probe.sock.send(request)
        except OSError as exc:
            raise TraceError(f"write: {exc.strerror or exc}") from None
        poller.register(probe.sock, _POLL_MASK)
        by_fd[probe.sock.fileno()] = probe
    while not all(p.answered for p in probes):
        wait_ms = round((until_mono - time.monotonic()) * 1000)
        if wait_ms <= 0:
            return
        for fd, events in poller.poll(wait_ms):
            probe = by_fd[fd]
            if events & select.POLLERR:
                _drain_errqueue(probe)
            if events & select.POLLIN:
                _read_reply(probe)
            if probe.answered:
                poller.unregister(fd)


def trace(target: str, options: TraceOptions = TraceOptions()) -> TraceResult:
    """Trace the path to ``target`` (an IP literal) on ``options.port``; TraceError if it cannot.

    Silent hops, rate-limited routers and a destination that never answers are results (gaps,
    ``stop`` = ``silent``/``max-hops``/``time-budget``), not errors.
    """
    try:
        family, sockaddr = resolve_target(target, options.port)
    except NTPNetworkError as exc:
        raise TraceError(str(exc)) from None
    address = str(sockaddr[0])
    started = datetime.now(UTC)
    deadline = time.monotonic() + options.time_budget_s
    outcomes: list[ProbeOutcome] = []
    source = ""
    stop = StopReason.MAX_HOPS
    for ttl in range(1, options.max_hops + 1):
        probes: list[_Probe] = []
        try:
            for _ in range(options.probes_per_hop):
                probes.append(_open_probe(family, sockaddr, ttl, address, options))
            source = source or str(probes[0].sock.getsockname()[0])
            _run_ttl(probes, min(deadline, time.monotonic() + options.probe_timeout_s))
        finally:
            for probe in probes:
                probe.sock.close()
        outcomes.extend(p.outcome() for p in probes)
        reason = stop_reason(
            assemble_hops(outcomes),
            max_hops=options.max_hops,
            max_silent=options.max_silent,
            out_of_time=time.monotonic() >= deadline,
        )
        if reason is not None:
            stop = reason
            break
    return TraceResult(
        target=address,
        port=options.port,
        started=started,
        hops=assemble_hops(outcomes),
        stop=stop,
        stamping=stamping_of(outcomes),
        source=source,
    )
