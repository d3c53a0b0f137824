"""``check_host``: probe one server a few times and turn the samples into one ``ServerStatus``.

The server scores what this returns (spec agent.md §10.4, §11.2–§11.4): which samples win, when
a probe stops early, and the exact error texts are all part of the wire contract, so the rules
here follow upstream to the letter. The selection and the classification are pure functions;
``check_host`` only adds the sleeps and the queries, both injectable.

The probe configuration is duck-typed (any object with these attributes, e.g. the agent's
``CheckConfig`` or :class:`ProbeConfig` below):

* ``samples`` — queries per server (0 means 3);
* ``ip`` / ``ip_nat`` — the monitor's address and, behind NAT, the local address to bind;
  ``ipaddress`` objects, text or packed bytes;
* ``port`` (optional, default 123) and ``allow_loopback`` (optional, default False): for the
  ``devel`` environment and ``make run`` only, where NTP responders listen on loopback on an
  unprivileged port. The caller decides when they may be set (the agent honours
  ``MONITOR_NTP_PORT`` / ``MONITOR_ALLOW_LOOPBACK`` only with ``--env devel``).
  ``allow_loopback`` lifts the loopback and private-address rejection; multicast and invalid
  addresses are still refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.metrics import Counter

from ntpmon.ntp import sntp, wire
from ntpmon.ntp.instruments import NO_PROBE_INSTRUMENTS, ProbeInstruments
from ntpmon.ntp.ipaddr import IPAddress, as_ip, is_loopback, is_multicast, is_private
from ntpmon.pb.monitor.v2.monitor_manager_pb2 import Server, ServerStatus

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 3
SAMPLE_SPACING_S = 2.0
"""Minimum headway between two queries to the same server."""
NETWORK_PREFIX = "network: "
MAX_GOOD_STRATUM = 10
UNSYNCHRONISED_STRATUM = 16

CheckResult = tuple[ServerStatus | None, sntp.NTPResponse | None, str | None]
QueryFn = Callable[..., sntp.NTPResponse]


@dataclass(frozen=True)
class ProbeConfig:
    """A plain probe configuration (tests, the ``check`` command, and localok)."""

    samples: int = DEFAULT_SAMPLES
    ip: Any = None
    ip_nat: Any = None
    base_checks: tuple[str, ...] = field(default_factory=tuple)
    port: int = sntp.DEFAULT_PORT
    allow_loopback: bool = False


@dataclass
class Sample:
    """One query's outcome: the status it would submit, the reply (if any) and the error text."""

    status: ServerStatus
    response: sntp.NTPResponse | None
    error: str | None


def address_rejection(ip: IPAddress | None, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` must not be probed (the spec's error text), or None when it may be.

    With ``allow_loopback`` (devel only) loopback and private targets are allowed.
    """
    addr = as_ip(ip)
    if addr is None:
        return "invalid IP"
    if is_multicast(addr):
        return "multicast address"
    if allow_loopback:
        return None
    if is_private(addr):
        return "private address"
    if is_loopback(addr):
        return "loopback address"
    return None


def _rtt_ns(status: ServerStatus) -> int | None:
    return status.rtt.ToNanoseconds() if status.HasField("rtt") else None


def _lower_rtt(candidate: Sample, best: Sample) -> bool:
    rtt, best_rtt = _rtt_ns(candidate.status), _rtt_ns(best.status)
    return rtt is not None and best_rtt is not None and rtt < best_rtt


def _beats(sample: Sample, best: Sample) -> bool:
    """Whether ``sample`` replaces ``best`` (rules 2–5 of §11.3)."""
    if best.error is None:
        return sample.error is None and _lower_rtt(sample, best)
    if sample.error is None:
        return True
    if best.status.no_response != sample.status.no_response:
        return best.status.no_response
    return _lower_rtt(sample, best)


def select_best(samples: list[Sample]) -> Sample:
    """Pick the sample to report (§11.3); ties keep the earlier sample.

    Good beats erroring; among errors a reply beats no reply; otherwise a strictly lower rtt
    wins, compared only when both rtts are present.
    """
    if not samples:
        raise ValueError("select_best needs at least one sample")
    best = samples[0]
    for sample in samples[1:]:
        if _beats(sample, best):
            best = sample
    return best


def reply_status(ip: IPAddress, response: sntp.NTPResponse, now: datetime) -> ServerStatus:
    """The status of a sample that got a valid reply."""
    status = ServerStatus(
        ip_bytes=ip.packed, no_response=False, stratum=response.stratum, leap=response.leap
    )
    status.ts.FromDatetime(now)
    status.offset.FromNanoseconds(response.clock_offset_ns)
    status.rtt.FromNanoseconds(response.rtt_ns)
    return status


def stratum_verdict(response: sntp.NTPResponse) -> str | None:
    """The error that ends a probe at once (kiss code or bad stratum); None for a usable reply."""
    if response.stratum in (0, UNSYNCHRONISED_STRATUM):
        if response.kiss_code:
            return response.kiss_code
        refid = wire.reference_id_text(response.reference_id)
        return f"bad stratum {response.stratum} (referenceID: {refid})"
    if response.stratum > MAX_GOOD_STRATUM:
        return f"bad stratum {response.stratum}"
    return None


def error_text(exc: Exception) -> str:
    """The submitted error text of a failed query (``network: `` marks no-response errors)."""
    if isinstance(exc, sntp.NTPNetworkError):
        return f"{NETWORK_PREFIX}{exc}"
    return str(exc)


def probe_source(cfg: Any) -> IPAddress | None:
    """The local address to bind: ``ip_nat`` when valid, else ``ip``; None (OS picks) without a
    valid ``ip`` — the NAT address alone is ignored, as upstream does."""
    ip = as_ip(getattr(cfg, "ip", None))
    if ip is None:
        log.error("Did not get valid local configuration IP")
        return None
    return as_ip(getattr(cfg, "ip_nat", None)) or ip


def _record(counter: Counter, ip: IPAddress) -> None:
    counter.add(1, {"ip_version": f"ipv{ip.version}"})


def check_host(
    ip: Any,
    cfg: Any,
    *,
    query: QueryFn = sntp.query,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    instruments: ProbeInstruments = NO_PROBE_INSTRUMENTS,
    name: str | None = None,
) -> CheckResult:
    """Probe ``ip`` with ``cfg.samples`` queries 2 s apart and return (status, response, error).

    A kiss-o'-death or bad-stratum reply ends the probe at once and wins over earlier good
    samples (a RATE kiss also drops the offset). A filtered address returns (None, None, reason).
    Never raises for anything the network or the server does.

    ``instruments`` are the agent's telemetry (``servers_checked_total`` once per call,
    ``ntp_queries_sent_total`` per query, the ``monitor.CheckHost`` span); the default records
    nothing. ``name`` is the base-check host name a local clock check adds to the span.
    """
    samples_wanted = cfg.samples if cfg.samples and cfg.samples > 0 else DEFAULT_SAMPLES
    source = probe_source(cfg)
    addr = as_ip(ip)
    if addr is not None:
        _record(instruments.servers_checked, addr)
    rejection = address_rejection(addr, allow_loopback=bool(getattr(cfg, "allow_loopback", False)))
    if rejection is not None or addr is None:
        return None, None, rejection or "invalid IP"
    port = int(getattr(cfg, "port", sntp.DEFAULT_PORT) or sntp.DEFAULT_PORT)
    extra = {"port": port} if port != sntp.DEFAULT_PORT else {}
    local_address = str(source) if source is not None else None
    attributes: dict[str, str | int] = {
        "ip": str(addr),
        "ip_version": f"ipv{addr.version}",
        "samples": samples_wanted,
    }
    if name is not None:
        attributes["name"] = name

    with instruments.tracer.start_as_current_span("monitor.CheckHost", attributes=attributes):
        samples: list[Sample] = []
        for i in range(samples_wanted):
            if i > 0:
                sleep(SAMPLE_SPACING_S)
            _record(instruments.ntp_queries_sent, addr)
            try:
                response = query(
                    str(addr), timeout=sntp.DEFAULT_TIMEOUT, local_address=local_address, **extra
                )
            except (sntp.NTPNetworkError, sntp.NTPProtocolError) as exc:
                samples.append(_failed_sample(addr, error_text(exc)))
                continue
            except Exception as exc:  # an injected or future query bug must not end the batch
                log.exception("ntp query failed unexpectedly", extra={"server": str(addr)})
                samples.append(_failed_sample(addr, str(exc) or type(exc).__name__))
                continue
            status = reply_status(addr, response, now())
            log.debug(
                "ntp sample",
                extra={
                    "server": str(addr),
                    "offset_ns": response.clock_offset_ns,
                    "rtt_ns": response.rtt_ns,
                    "stratum": response.stratum,
                    "stamping": response.stamping,
                },
            )
            verdict = stratum_verdict(response)
            if verdict is not None:
                if verdict == "RATE":
                    status.ClearField("offset")
                status.error = verdict
                return status, response, verdict
            samples.append(Sample(status, response, None))
        best = select_best(samples)
        return best.status, best.response, best.error


def _failed_sample(addr: IPAddress, error: str) -> Sample:
    return Sample(ServerStatus(ip_bytes=addr.packed, no_response=True, error=error), None, error)


def status_for_submission(
    server: Server,
    result: CheckResult,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ServerStatus:
    """The status to submit for ``server`` from a ``check_host`` result (§10.4 step 5).

    Echoes the ticket unchanged, carries the error text, marks ``network:`` errors and filtered
    addresses as no response, and stamps the time the probe finished.
    """
    status, _response, error = result
    out = ServerStatus()
    if status is None:
        out.ip_bytes = server.ip_bytes
        out.no_response = True
    else:
        out.CopyFrom(status)
    out.ticket = server.ticket
    if error:
        out.error = error
        if error.startswith(NETWORK_PREFIX):
            out.no_response = True
    out.ts.FromDatetime(now())
    return out
