"""A traceroute's result: hop assembly from probe outcomes, the JSON form, path comparison.

Everything here is pure. Agents build a :class:`TraceResult` with :func:`assemble_hops` and
publish :func:`to_json`; monitor-api reads it back with :func:`from_json`, which treats the
document as untrusted input (bounded sizes, addresses parsed, unknown keys ignored), and the
status page compares consecutive paths with :func:`path_changes`.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ntpmon.common.errors import NtpmonError
from ntpmon.traceroute.errqueue import ErrKind

FORMAT_VERSION = 1
MAX_HOPS_ACCEPTED = 64
MAX_PROBES_ACCEPTED = 10
MAX_RTT_US = 60_000_000


class TraceFormatError(NtpmonError, ValueError):
    """A traceroute document that is not one (refused at ingest)."""


class StopReason:
    """Why a trace ended (string constants: they travel in JSON and in the database)."""

    REACHED = "reached"
    UNREACHABLE = "unreachable"
    MAX_HOPS = "max-hops"
    SILENT = "silent"
    TIME_BUDGET = "time-budget"
    ALL = frozenset({REACHED, UNREACHABLE, MAX_HOPS, SILENT, TIME_BUDGET})


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What became of one probe: who answered (None: nobody within the timeout) and how."""

    ttl: int
    responder: str | None
    kind: ErrKind | None
    """None with a responder: a datagram (the NTP reply) came back from the destination."""
    rtt_ns: int | None
    kernel_stamped: bool = False

    @property
    def reached(self) -> bool:
        """The destination itself answered: its reply or its port-unreachable."""
        return self.responder is not None and (
            self.kind is None or self.kind is ErrKind.PORT_UNREACHABLE
        )

    @property
    def path_ends(self) -> bool:
        """A router said the destination cannot be reached through it."""
        return self.kind is ErrKind.UNREACHABLE


@dataclass(frozen=True, slots=True)
class Hop:
    """One TTL: the address that answered most (None: a gap), the per-probe RTTs (None: lost).

    ``others`` lists further responders at this TTL (load-balanced paths).
    """

    ttl: int
    address: str | None
    rtts_us: tuple[int | None, ...]
    reached: bool = False
    note: str = ""
    others: tuple[str, ...] = ()

    @property
    def gap(self) -> bool:
        return self.address is None


@dataclass(frozen=True, slots=True)
class TraceResult:
    """A whole trace towards ``target``:``port``."""

    target: str
    port: int
    started: datetime
    hops: tuple[Hop, ...]
    stop: str
    stamping: str = "user"
    source: str = ""

    @property
    def reached(self) -> bool:
        return any(h.reached for h in self.hops)

    def path(self) -> tuple[str | None, ...]:
        """The address of every hop in order (None for gaps): what "the path" means here."""
        return tuple(h.address for h in self.hops)


def _rtt_us(rtt_ns: int | None) -> int | None:
    return None if rtt_ns is None else max(0, rtt_ns // 1000)


def assemble_hops(outcomes: Iterable[ProbeOutcome]) -> tuple[Hop, ...]:
    """Group probe outcomes by TTL into hops, cut after the first hop that ends the path.

    Probes of later TTLs may have been in flight when the destination answered; they say
    nothing new and are dropped. A TTL where nobody answered stays as a gap.
    """
    by_ttl: dict[int, list[ProbeOutcome]] = {}
    for outcome in outcomes:
        by_ttl.setdefault(outcome.ttl, []).append(outcome)
    hops: list[Hop] = []
    for ttl in sorted(by_ttl):
        hop = _hop(ttl, by_ttl[ttl])
        hops.append(hop)
        if hop.reached or hop.note == ErrKind.UNREACHABLE:
            break
    return tuple(hops)


def _hop(ttl: int, probes: Sequence[ProbeOutcome]) -> Hop:
    answered = [p.responder for p in probes if p.responder is not None]
    counts = Counter(answered)
    address = max(counts, key=lambda a: (counts[a], -answered.index(a))) if counts else None
    others = tuple(a for a in dict.fromkeys(answered) if a != address)
    reached = any(p.reached for p in probes)
    ends = [p for p in probes if p.path_ends]
    note = ErrKind.UNREACHABLE.value if ends and not reached else ""
    return Hop(
        ttl=ttl,
        address=address,
        rtts_us=tuple(_rtt_us(p.rtt_ns) for p in probes),
        reached=reached,
        note=note,
        others=others,
    )


def stop_reason(
    hops: Sequence[Hop], *, max_hops: int, max_silent: int, out_of_time: bool
) -> str | None:
    """Why the trace is over after ``hops`` (None: go on with the next TTL)."""
    if hops and hops[-1].reached:
        return StopReason.REACHED
    if hops and hops[-1].note == ErrKind.UNREACHABLE:
        return StopReason.UNREACHABLE
    silent = 0
    for hop in reversed(hops):
        if not hop.gap:
            break
        silent += 1
    if max_silent and silent >= max_silent:
        return StopReason.SILENT
    if hops and hops[-1].ttl >= max_hops:
        return StopReason.MAX_HOPS
    if out_of_time:
        return StopReason.TIME_BUDGET
    return None


def stamping_of(outcomes: Iterable[ProbeOutcome]) -> str:
    """``kernel`` when every measured RTT used kernel stamps, ``user`` when none, else ``mixed``."""
    kinds = {o.kernel_stamped for o in outcomes if o.rtt_ns is not None}
    if kinds == {True}:
        return "kernel"
    return "mixed" if kinds == {True, False} else "user"


# -- JSON (agent → monitor-api) --------------------------------------------------------------
def to_json(result: TraceResult) -> dict[str, Any]:
    """The document agents publish; compact keys, RTTs in whole microseconds, null = lost."""
    hops = []
    for hop in result.hops:
        doc: dict[str, Any] = {"ttl": hop.ttl, "addr": hop.address, "rtt_us": list(hop.rtts_us)}
        if hop.reached:
            doc["reached"] = True
        if hop.note:
            doc["note"] = hop.note
        if hop.others:
            doc["others"] = list(hop.others)
        hops.append(doc)
    return {
        "v": FORMAT_VERSION,
        "target": result.target,
        "port": result.port,
        "source": result.source,
        "started": result.started.astimezone(UTC).isoformat(timespec="milliseconds"),
        "stop": result.stop,
        "reached": result.reached,
        "stamping": result.stamping,
        "hops": hops,
    }


def _address(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TraceFormatError(f"{what} is not an address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise TraceFormatError(f"{what} {value[:60]!r} is not an address") from None


def _int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TraceFormatError(f"{what} must be an integer in {low}..{high}")
    return value


def _hop_from_json(doc: object) -> Hop:
    if not isinstance(doc, Mapping):
        raise TraceFormatError("a hop is not an object")
    address = doc.get("addr")
    rtts = doc.get("rtt_us", [])
    if not isinstance(rtts, list) or len(rtts) > MAX_PROBES_ACCEPTED:
        raise TraceFormatError(f"rtt_us must be a list of at most {MAX_PROBES_ACCEPTED}")
    others = doc.get("others", [])
    if not isinstance(others, list) or len(others) > MAX_PROBES_ACCEPTED:
        raise TraceFormatError("others must be a short list of addresses")
    note = doc.get("note", "")
    if note not in ("", ErrKind.UNREACHABLE.value):
        raise TraceFormatError("unknown hop note")
    return Hop(
        ttl=_int(doc.get("ttl"), "ttl", 1, 255),
        address=None if address is None else _address(address, "hop address"),
        rtts_us=tuple(None if r is None else _int(r, "rtt_us", 0, MAX_RTT_US) for r in rtts),
        reached=doc.get("reached") is True,
        note=note,
        others=tuple(_address(a, "other address") for a in others),
    )


def from_json(doc: object) -> TraceResult:
    """A published document back as a :class:`TraceResult`; TraceFormatError when malformed."""
    if not isinstance(doc, Mapping):
        raise TraceFormatError("traceroute is not an object")
    if doc.get("v") != FORMAT_VERSION:
        raise TraceFormatError(f"unsupported traceroute format {doc.get('v')!r}")
    hops = doc.get("hops")
    if not isinstance(hops, list) or len(hops) > MAX_HOPS_ACCEPTED:
        raise TraceFormatError(f"hops must be a list of at most {MAX_HOPS_ACCEPTED}")
    stop = doc.get("stop")
    if stop not in StopReason.ALL:
        raise TraceFormatError("unknown stop reason")
    started_text = doc.get("started")
    try:
        started = datetime.fromisoformat(str(started_text))
    except ValueError:
        raise TraceFormatError("started is not an ISO 8601 time") from None
    if started.tzinfo is None:
        raise TraceFormatError("started has no time zone")
    source = doc.get("source") or ""
    stamping = doc.get("stamping", "user")
    if stamping not in ("kernel", "user", "mixed"):
        raise TraceFormatError("unknown stamping")
    parsed = tuple(_hop_from_json(h) for h in hops)
    ttls = [h.ttl for h in parsed]
    if ttls != sorted(set(ttls)):
        raise TraceFormatError("hops must be in increasing TTL order")
    return TraceResult(
        target=_address(doc.get("target"), "target"),
        port=_int(doc.get("port"), "port", 1, 65535),
        started=started.astimezone(UTC),
        hops=parsed,
        stop=str(stop),
        stamping=str(stamping),
        source=_address(source, "source") if source else "",
    )


# -- how a path changed (status page) ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HopChange:
    """A TTL whose address differs between two traces (None: a gap or no such hop)."""

    ttl: int
    before: str | None
    after: str | None


def path_changes(before: Sequence[str | None], after: Sequence[str | None]) -> list[HopChange]:
    """The TTLs whose answering address changed from one trace to the next.

    A gap in either trace is not a change by itself (a router that rate-limits its ICMP shows
    up in one trace and not the next); a hop that appears or disappears at the end is.
    """
    changes = []
    for index in range(max(len(before), len(after))):
        old = before[index] if index < len(before) else None
        new = after[index] if index < len(after) else None
        beyond_end = index >= len(before) or index >= len(after)
        if old != new and (beyond_end or (old is not None and new is not None)):
            changes.append(HopChange(index + 1, old, new))
    return changes


# -- the MQTT message around a result ----------------------------------------------------------
REASON_HEALTH = "health"
"""Run because GetServers set ``trace`` (monitor-api saw a health change)."""
REASON_REQUEST = "request"
"""Run because of a traceroute request (``POST /check/traceroute/<ip>``)."""
MAX_MESSAGE_BYTES = 64 * 1024
MAX_MONITOR_CHARS = 255  # monitors.tls_name is VARCHAR(255)


@dataclass(frozen=True, slots=True)
class TraceMessage:
    """``{"Traceroute": {...}, "Error": "...", "Reason": "..."}`` as agents publish it.

    ``monitor`` (``"Monitor"``, the agent's TLS name) travels only in management-API uploads:
    on MQTT the topic names the agent, over HTTP the body must, so that monitor-api can refuse a
    trace claimed for another monitor than the API key's.
    """

    result: TraceResult | None
    error: str = ""
    reason: str = REASON_HEALTH
    monitor: str = ""

    def to_payload(self) -> bytes:
        doc: dict[str, Any] = {"Reason": self.reason}
        if self.result is not None:
            doc["Traceroute"] = to_json(self.result)
        if self.error:
            doc["Error"] = self.error
        if self.monitor:
            doc["Monitor"] = self.monitor
        return json.dumps(doc, separators=(",", ":")).encode()


def decode_message(payload: bytes) -> TraceMessage:
    """An agent's message, validated (TraceFormatError otherwise); unknown reasons → health."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise TraceFormatError("traceroute message too large")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise TraceFormatError("traceroute message is not JSON") from None
    except RecursionError:
        raise TraceFormatError("traceroute message is nested too deeply") from None
    if not isinstance(doc, dict):
        raise TraceFormatError("traceroute message is not an object")
    error = doc.get("Error") or ""
    if not isinstance(error, str):
        raise TraceFormatError("Error is not a string")
    raw = doc.get("Traceroute")
    result = None if raw is None else from_json(raw)
    if result is None and not error:
        raise TraceFormatError("traceroute message has neither a result nor an error")
    monitor = doc.get("Monitor") or ""
    if not isinstance(monitor, str) or len(monitor) > MAX_MONITOR_CHARS:
        raise TraceFormatError(f"Monitor is not a string of at most {MAX_MONITOR_CHARS} characters")
    reason = REASON_REQUEST if doc.get("Reason") == REASON_REQUEST else REASON_HEALTH
    return TraceMessage(result, error[:500], reason, monitor)
