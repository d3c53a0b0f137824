"""Integration scenarios TS-9 … TS-21, TS-24 of spec/scorer.md §16 on MariaDB and SQLite."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ntpmon.scorer.errors import BatchError, NoScorersError

from .conftest import EV, M3, M4, RM, S1, S2, World

pytestmark = pytest.mark.db


def attrs(row_attributes: str | None) -> dict[str, object]:
    return json.loads(row_attributes or "null") or {}


def test_ts9_backlog_and_ts10_nothing_to_do(world: World) -> None:
    ids = [world.log(S1, M3, 20.0, 0.8, world.now - timedelta(minutes=i)) for i in range(100)]
    runner = world.runner()
    assert runner.run() == 200

    rm = world.server_score(S1, RM)
    assert rm is not None
    assert (rm.status, rm.score_raw, rm.score_ts) == ("active", 20.0, world.now - timedelta(minutes=99))
    ev = world.server_score(S1, EV)
    assert ev is not None
    assert ev.status == "active"
    assert ev.score_raw == pytest.approx(15.875668886372987, abs=1e-9)
    assert ev.score_ts == world.now - timedelta(minutes=99)

    rm_rows, ev_rows = world.outputs(RM), world.outputs(EV)
    assert len(rm_rows) == 1
    assert len(ev_rows) == 1
    assert (rm_rows[0].score, rm_rows[0].step, rm_rows[0].ts) == (20.0, 0.8, world.now)
    assert rm_rows[0].attributes == f'{{"from_ls_id":{ids[0]},"from_ss_id":{rm.id}}}'
    assert (rm_rows[0].offset, rm_rows[0].rtt) == (None, None)
    assert ev_rows[0].score == pytest.approx(-3.95, abs=1e-12)
    assert world.server(S1) == (world.now, 20.0)
    assert world.cursor(RM) == ids[-1]
    assert world.cursor(EV) == ids[-1]

    before = (world.outputs(RM), world.outputs(EV), world.server_score(S1, EV), world.server(S1))
    assert runner.run() == 0
    after = (world.outputs(RM), world.outputs(EV), world.server_score(S1, EV), world.server(S1))
    assert before == after


def test_ts12_no_scorers_configured(db, clock) -> None:  # type: ignore[no-untyped-def]
    from .conftest import build_world

    world = build_world(db, clock, scorers=())
    with pytest.raises(NoScorersError, match="no scorers configured"):
        world.runner().run()
