"""``scorer setup`` (spec/scorer.md §10.3) and the cursor listing of ``db`` (§10.4)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ntpmon.db import scorer as q
from ntpmon.scorer.errors import SetupError
from ntpmon.scorer.registry import KNOWN_NAMES, configured_scorers

log = logging.getLogger(__name__)


def setup_scorers(engine: Engine, *, now: datetime) -> list[str]:
    """Create the scorer monitors and cursors that are missing; returns the names created.

    All in one transaction. The cursor column is a NOT NULL foreign key to ``log_scores``,
    so an empty ``log_scores`` is refused before anything is written.
    """
    created: list[str] = []
    with engine.begin() as conn:
        configured = {s.name for s in configured_scorers(q.get_scorers(conn))}
        min_id = q.get_min_log_score_id(conn)
        if min_id is None:
            raise SetupError(
                "log_scores is empty: scorers start at the oldest log score, "
                "run setup after the first measurements arrived"
            )
        for name in KNOWN_NAMES:
            if name in configured:
                log.info("scorer already configured", extra={"scorer": name})
                continue
            scorer_id = q.insert_scorer(conn, hostname=name, now=now)
            try:
                q.insert_scorer_status(conn, scorer_id=scorer_id, log_score_id=min_id, now=now)
            except DBAPIError as exc:  # upstream only logs this one
                log.warning(
                    "could not create the scorer cursor",
                    extra={"scorer": name, "error": str(exc.orig).splitlines()[0]},
                )
            log.info(
                "scorer created",
                extra={"scorer": name, "scorer_id": scorer_id, "log_score_id": min_id},
            )
            created.append(name)
    return created


def scorer_status_lines(engine: Engine) -> list[str]:
    """One ``%-5d %-20s %-10d <modified_on>`` line per cursor row, or ``No scorers found``."""
    with engine.begin() as conn:
        rows = q.get_scorer_status(conn)
    if not rows:
        return ["No scorers found"]
    return [
        f"{r.scorer_id:<5d} {r.hostname:<20s} {r.log_score_id:<10d} "
        f"{r.modified_on:%Y-%m-%d %H:%M:%S}"
        for r in rows
    ]
