"""The scorers the code knows (spec/scorer.md §4) and which of them the database configures.

Two algorithms exist, keyed by the scorer monitor's hostname: ``every`` and ``recentmedian``
(the main scorer, the only one that writes ``servers.score_raw``). The configured list is
rebuilt from the database on every run and processed in name order (SQ13, SQ14 fixed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from sqlalchemy import Connection

from ntpmon.db.models import LogScore
from ntpmon.db.scorer import ScorerRow, load_recent_window
from ntpmon.scorer import every, recentmedian
from ntpmon.scorer.recentmedian import NoRecentScoresError, Tier, WindowLoad
from ntpmon.scorer.rowcache import RowCache
from ntpmon.scorer.score import Score

log = logging.getLogger(__name__)

MAIN_SCORER = recentmedian.NAME


class Algorithm(Protocol):
    """How one scorer turns a batch of monitor rows into scores."""

    name: str
    updates_servers: bool

    def prepare(
        self,
        conn: Connection,
        rows: Sequence[LogScore],
        agents: Sequence[int],
        cache: RowCache | None = None,
    ) -> Any:
        """Load what scoring the batch needs, once (inside the batch transaction).

        ``cache`` holds rows read by earlier batches; rows read now are added to it.
        """

    def score(
        self, prepared: Any, ls: LogScore, *, scorer_id: int, ss_id: int, previous: float
    ) -> Score:
        """Score one row; raises ``ScoringError`` when the row cannot be scored."""


class EveryAlgorithm:
    name = every.NAME
    updates_servers = False

    def prepare(
        self,
        conn: Connection,
        rows: Sequence[LogScore],
        agents: Sequence[int],
        cache: RowCache | None = None,
    ) -> None:
        return None

    def score(
        self, prepared: Any, ls: LogScore, *, scorer_id: int, ss_id: int, previous: float
    ) -> Score:
        return every.every_score(ls, previous, scorer_id=scorer_id)


class RecentMedianAlgorithm:
    name = recentmedian.NAME
    updates_servers = True

    def prepare(
        self,
        conn: Connection,
        rows: Sequence[LogScore],
        agents: Sequence[int],
        cache: RowCache | None = None,
    ) -> dict[int, list[LogScore]]:
        def load(tier: Tier, request: WindowLoad) -> list[LogScore]:
            loaded = load_recent_window(
                conn,
                server_ids=request.server_ids,
                statuses=tier.statuses,
                first_ts=request.first_ts,
                last_ts=request.last_ts,
                lookback_s=tier.lookback_s,
                agents=agents,
                known=cache,
            )
            if cache is not None:
                cache.remember(loaded)
            return loaded

        return recentmedian.resolve_candidates(rows, load)

    def score(
        self,
        prepared: dict[int, list[LogScore]],
        ls: LogScore,
        *,
        scorer_id: int,
        ss_id: int,
        previous: float,
    ) -> Score:
        candidates = prepared.get(ls.id)
        if not candidates:
            raise NoRecentScoresError(f"no recent scores found for {ls.server_id}")
        chosen = recentmedian.choose(candidates)
        return recentmedian.median_score(ls, chosen, scorer_id=scorer_id, ss_id=ss_id)


ALGORITHMS: MappingProxyType[str, Algorithm] = MappingProxyType(
    {a.name: a for a in (EveryAlgorithm(), RecentMedianAlgorithm())}
)
KNOWN_NAMES: tuple[str, ...] = tuple(sorted(ALGORITHMS))


@dataclass(frozen=True, slots=True)
class ConfiguredScorer:
    """A scorer to run now: its algorithm name, monitor id and the cursor seen at run start."""

    name: str
    scorer_id: int
    cursor: int

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.name]


def configured_scorers(rows: Sequence[ScorerRow]) -> list[ConfiguredScorer]:
    """Known scorers from Q16's rows, in name order; unknown names are logged and ignored.

    Upstream keys its scorers by name, so for duplicates the last row (by id) wins.
    """
    by_name: dict[str, ConfiguredScorer] = {}
    for row in sorted(rows, key=lambda r: (r.id, r.status_id)):
        if row.hostname not in ALGORITHMS:
            log.warning(
                "scorer not implemented", extra={"scorer": row.hostname, "scorer_id": row.id}
            )
            continue
        by_name[row.hostname] = ConfiguredScorer(row.hostname, row.id, row.log_score_id)
    return [by_name[name] for name in sorted(by_name)]
