"""The local clock sanity check: only measure others while our own clock agrees with the majority.

A monitor whose own clock is off would blame every server it measures, and the server would
believe it. So before each batch the worker asks its ``base_checks`` hosts (well-run NTP servers)
and works only while a strict majority of the reachable ones are within 10 ms and synchronised
(spec agent.md §12). The verdict is cached for 180 s. Unlike upstream, the current configuration
is read at every evaluation, so new base checks or sample counts apply without a restart.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ntpmon.ntp.check import CheckResult, check_host
from ntpmon.ntp.instruments import NO_PROBE_INSTRUMENTS, ProbeInstruments
from ntpmon.ntp.ipaddr import IPAddress, as_ip
from ntpmon.pb.monitor.v2.monitor_manager_pb2 import ServerStatus

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 180.0
MAX_OFFSET_NS = 10_000_000
HOST_START_SPACING_S = 0.02
LEAP_NOT_IN_SYNC = 3

ProbeFn = Callable[[IPAddress, Any, str], CheckResult]
"""Probe one base-check host: (address, probe config, host name) → ``check_host``'s result."""
ResolveFn = Callable[[str, int], IPAddress | None]


def failure_threshold(n_hosts: int) -> int:
    """How many of ``n_hosts`` may fail: ``n − ⌊(n + 2)/2⌋`` (a strict majority must pass)."""
    return n_hosts - (n_hosts + 2) // 2


def format_duration(ns: int) -> str:
    """A duration the way Go prints one (``11ms``, ``-1.5s``, ``250µs``), for log texts."""
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    for unit, scale in (("s", 1_000_000_000), ("ms", 1_000_000), ("µs", 1_000)):
        if ns >= scale:
            whole, frac = divmod(ns, scale)
            digits = f"{frac:0{len(str(scale)) - 1}d}".rstrip("0")
            return f"{sign}{whole}{'.' + digits if digits else ''}{unit}"
    return f"{sign}{ns}ns" if ns else "0s"


def host_passes(status: ServerStatus | None, error: str | None) -> tuple[bool, str | None]:
    """Whether one base-check host vouches for our clock, and why not.

    It passes with no probe error, |offset| ≤ 10 ms (exactly 10 ms passes) and leap ≠ 3.
    """
    if error:
        return False, error
    if status is None or not status.HasField("offset"):
        return False, "no offset"
    offset = status.offset.ToNanoseconds()
    if abs(offset) > MAX_OFFSET_NS:
        return False, f"offset too large: {format_duration(offset)}"
    if status.leap == LEAP_NOT_IN_SYNC:
        return False, "NotInSync"
    return True, None


def resolve_first(host: str, ip_version: int) -> IPAddress | None:
    """The first address of ``host`` in the worker's family (system resolver), or None.

    An address literal is taken as it is (no resolver traffic): one of the other family is
    simply not usable by this worker.
    """
    literal = as_ip(host)
    if literal is not None:
        return literal if literal.version == ip_version else None
    family = socket.AF_INET if ip_version == 4 else socket.AF_INET6
    try:
        infos = socket.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for _family, _type, _proto, _name, sockaddr in infos:
        addr = as_ip(str(sockaddr[0]).split("%", 1)[0])
        if addr is not None and addr.version == ip_version:
            return addr
    return None


def _host_name(entry: object) -> str:
    if isinstance(entry, bytes | bytearray):
        return bytes(entry).decode("utf-8", "replace")
    return str(entry)


class LocalOK:
    """The cached verdict on the local clock for one worker (one IP version).

    ``config`` returns the worker's current probe configuration (``base_checks``, ``samples``,
    ``ip``/``ip_nat``, optional ``port``/``allow_loopback``), or None before the first one.
    ``instruments`` (the agent's telemetry; by default nothing is recorded) take the
    ``localcheck-update`` span, the per-host gauges and the probes' own metrics and spans.
    """

    def __init__(
        self,
        config: Callable[[], Any | None],
        ip_version: int,
        *,
        instruments: ProbeInstruments = NO_PROBE_INSTRUMENTS,
        probe: ProbeFn | None = None,
        resolve: ResolveFn = resolve_first,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = CHECK_INTERVAL_S,
    ) -> None:
        if ip_version not in (4, 6):
            raise ValueError(f"ip_version must be 4 or 6, not {ip_version!r}")
        self._config = config
        self._ip_version = ip_version
        self._instruments = instruments
        self._probe = probe or self._check_host
        self._resolve = resolve
        self._monotonic = monotonic
        self._sleep = sleep
        self._interval = interval
        self._lock = threading.Lock()
        self._last_check: float | None = None
        self._last_result = False

    def check(self) -> bool:
        """The cached verdict if younger than the interval, else a fresh evaluation."""
        with self._lock:
            if (
                self._last_check is not None
                and self._monotonic() - self._last_check < self._interval
            ):
                return self._last_result
            self._last_result = self._evaluate()
            self._last_check = self._monotonic()
            return self._last_result

    def next_check_in(self) -> float:
        """Seconds until the cached verdict expires (0 when it already has)."""
        with self._lock:
            if self._last_check is None:
                return 0.0
            return max(0.0, self._last_check + self._interval - self._monotonic())

    def _check_host(self, addr: IPAddress, cfg: Any, name: str) -> CheckResult:
        """The real probe, recorded on this check's instruments with the host's name."""
        return check_host(addr, cfg, instruments=self._instruments, name=name)

    def _evaluate(self) -> bool:
        version = f"v{self._ip_version}"
        instruments = self._instruments
        with instruments.tracer.start_as_current_span("localcheck-update"):
            cfg = self._config()
            base_checks = list(getattr(cfg, "base_checks", None) or []) if cfg else []
            if not base_checks:
                log.warning("no base checks configured", extra={"ip_version": version})
                return False
            targets: list[tuple[str, IPAddress]] = []
            for entry in base_checks:
                name = _host_name(entry)
                addr = self._resolve(name, self._ip_version)
                if addr is None:
                    log.info("local-check host skipped: no address", extra={"host": name})
                    continue
                targets.append((name, addr))
            if not targets:
                log.warning("local-check: no usable hosts", extra={"ip_version": version})
                return False

            outcomes = self._probe_all(targets, cfg)
            failures = 0
            for (name, addr), (started, (ok, reason)) in zip(targets, outcomes, strict=True):
                attrs = {"host": name, "ip_version": version}
                instruments.local_check_up.set(1 if ok else 0, attrs)
                instruments.local_check_time.set(started, attrs)
                if not ok:
                    failures += 1
                    log.warning(
                        "local-check failure",
                        extra={"host": name, "ip": str(addr), "reason": reason, **attrs},
                    )
            threshold = failure_threshold(len(targets))
            log.info(
                "local-check",
                extra={
                    "failures": failures,
                    "threshold": threshold,
                    "hosts": len(targets),
                    "ip_version": version,
                },
            )
            return failures <= threshold

    def _probe_all(
        self, targets: list[tuple[str, IPAddress]], cfg: Any
    ) -> list[tuple[float, tuple[bool, str | None]]]:
        """Probe every host concurrently, starting them 20 ms apart; never raises.

        Each probe runs in a copy of this thread's context, so its span is a child of
        ``localcheck-update`` (pool threads do not inherit the trace context by themselves).
        """

        def one(name: str, addr: IPAddress) -> tuple[float, tuple[bool, str | None]]:
            started = time.time()
            try:
                status, _response, error = self._probe(addr, cfg, name)
            except Exception as exc:  # a probe bug must fail the host, not the worker
                log.exception("local-check probe failed", extra={"ip": str(addr)})
                return started, (False, str(exc) or type(exc).__name__)
            return started, host_passes(status, error)

        futures: list[Future] = []
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="localok") as pool:
            for i, (name, addr) in enumerate(targets):
                if i:
                    self._sleep(HOST_START_SPACING_S)
                futures.append(pool.submit(contextvars.copy_context().run, one, name, addr))
        return [f.result() for f in futures]
