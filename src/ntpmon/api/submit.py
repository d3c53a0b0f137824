"""SubmitResults as pure steps: check a batch, then turn it into rows (api.md §8).

:func:`prepare_batch` verifies every ticket before anything is written (so a forged ticket
changes nothing, not even ``last_submit``), and :func:`score_batch` turns the verified results
and the assignment rows read in one query into the writes of the batch transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ntpmon.api import ipbytes
from ntpmon.api.rpcerrors import internal, invalid
from ntpmon.api.tickets import TicketSigner
from ntpmon.db.api import Assignment, ScoreUpdate
from ntpmon.db.common import log_score_values
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.scorer.statusscore import Measurement, legacy_zero_offset, score
from ntpmon.traceroute.plan import Health, health_of

SUPPORTED_VERSIONS = (3, 4)
MAX_RESULTS = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIGNATURE_FAILED = "signature validation failed"


@dataclass(frozen=True, slots=True)
class VerifiedResult:
    """One result whose ticket verified, with the server IP as stored text."""

    ip_text: str
    measurement: Measurement
    spellings: frozenset[str] = frozenset()


@dataclass
class BatchWrites:
    """Everything the batch transaction writes, plus the result counts for the metrics."""

    score_updates: list[ScoreUpdate] = field(default_factory=list)
    server_strata: dict[int, int] = field(default_factory=dict)
    log_rows: list[dict[str, object]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    healths: dict[int, list[Health | None]] = field(default_factory=dict)
    """server id → the path-relevant health of each of its results, in batch order."""


class TicketError(Exception):
    """A ticket did not verify; ``index`` is the position of the first bad result."""

    def __init__(self, index: int) -> None:
        super().__init__(SIGNATURE_FAILED)
        self.index = index


def _nanos(duration: object) -> int:
    return int(duration.seconds) * 1_000_000_000 + int(duration.nanos)  # type: ignore[attr-defined]


def to_measurement(status: pb.ServerStatus) -> Measurement:
    """A wire status as the status scorer's input (absent ts → 1970, absent offset → None)."""
    ts = status.ts.ToDatetime(tzinfo=UTC) if status.HasField("ts") else EPOCH
    return Measurement(
        ts=ts,
        offset_ns=_nanos(status.offset) if status.HasField("offset") else None,
        rtt_ns=_nanos(status.rtt) if status.HasField("rtt") else None,
        stratum=status.stratum,
        leap=status.leap,
        error=status.error,
        no_response=status.no_response,
    )


def check_request_shape(version: int, statuses: Sequence[pb.ServerStatus]) -> None:
    """Version and size limits, checked before the batch id (api.md §8.1 step 3)."""
    if version not in SUPPORTED_VERSIONS:
        raise invalid("Version Unsupported data version")
    if len(statuses) > MAX_RESULTS:
        raise invalid(f"too many results in one batch (at most {MAX_RESULTS})")
    for status in statuses:
        if not 0 <= status.stratum <= 255:
            raise invalid(f"stratum {status.stratum} out of range")


def prepare_batch(
    statuses: Sequence[pb.ServerStatus],
    *,
    signer: TicketSigner,
    monitor_id: int,
    batch_id: str,
    safe_zero_offset: bool,
) -> list[VerifiedResult]:
    """Verify every ticket (raising :class:`TicketError`) and apply the zero-offset rule."""
    out: list[VerifiedResult] = []
    for index, status in enumerate(statuses):
        packed, text, spellings = ipbytes.wire_forms(status.ip_bytes)
        if not signer.verify(status.ticket, monitor_id, batch_id, packed):
            raise TicketError(index)
        measurement = to_measurement(status)
        if not safe_zero_offset:
            measurement = legacy_zero_offset(measurement)
        out.append(VerifiedResult(text, measurement, spellings))
    return out


def _result_label(step: float) -> str:
    if step == -5:
        return "timeout"
    if step < 1:
        return "offset"
    return "ok"


def score_batch(
    results: Sequence[VerifiedResult],
    assignments: Mapping[str, Assignment],
    *,
    monitor_id: int,
) -> BatchWrites:
    """Score results in list order; a server seen twice accumulates on its own new score."""
    writes = BatchWrites(counts={})
    scores: dict[int, float] = {}
    last_ts: dict[int, datetime] = {}
    score_strata: dict[int, int] = {}
    server_strata: dict[int, int] = {}
    by_score_id: dict[int, Assignment] = {}
    for result in results:
        assignment = assignments.get(result.ip_text)
        if assignment is None:
            raise internal(f"unknown server {result.ip_text}")
        if assignment.score_id is None:
            raise internal(f"server {result.ip_text} is not assigned to this monitor")
        sid = assignment.score_id
        by_score_id[sid] = assignment
        status = score(result.measurement)
        new_score = status.accumulate(scores.get(sid, assignment.score_raw))
        scores[sid] = new_score
        last_ts[sid] = status.ts
        if result.measurement.stratum > 0:
            score_strata[sid] = result.measurement.stratum
            server_strata[assignment.server_id] = result.measurement.stratum
        writes.log_rows.append(
            log_score_values(
                server_id=assignment.server_id,
                monitor_id=monitor_id,
                ts=status.ts,
                score=new_score,
                step=status.step,
                offset=status.offset_s,
                rtt=status.rtt_us,
                attributes=status.attributes,
            )
        )
        writes.healths.setdefault(assignment.server_id, []).append(
            health_of(
                no_response=result.measurement.no_response,
                error=result.measurement.error,
                step=status.step,
            )
        )
        label = _result_label(status.step)
        writes.counts[label] = writes.counts.get(label, 0) + 1
    for sid, new_score in scores.items():
        stratum = score_strata.get(sid)
        unchanged = stratum is None or stratum == by_score_id[sid].score_stratum
        writes.score_updates.append(
            ScoreUpdate(sid, last_ts[sid], new_score, None if unchanged else stratum)
        )
    server_known = {a.server_id: a.server_stratum for a in by_score_id.values()}
    writes.server_strata = {
        server_id: stratum
        for server_id, stratum in server_strata.items()
        if stratum != server_known[server_id]
    }
    return writes
