"""The status-page queries on both dialects, against seeded data."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from ntpmon.db import pages

from .conftest import HISTORY_HOURS, Seeded


def test_server_overviews_count_agents_by_status_not_scorers(db: Engine, seeded: Seeded) -> None:
    with db.connect() as conn:
        listed = {s.id: s for s in pages.list_server_overviews(conn)}
    assert list(listed) == [seeded.good, seeded.bad, seeded.v6]  # v4 first, then v6
    assert listed[seeded.good].monitor_counts == {"active": 1, "testing": 1}
    assert listed[seeded.bad].monitor_counts == {"candidate": 2}
    assert listed[seeded.v6].monitor_counts == {"candidate": 1}
    assert listed[seeded.good].score_raw == 19.5
    assert listed[seeded.good].hostname == "good.example"


def test_get_server_overview_one_or_none(db: Engine, seeded: Seeded) -> None:
    with db.connect() as conn:
        one = pages.get_server_overview(conn, server_id=seeded.bad)
        missing = pages.get_server_overview(conn, server_id=seeded.v6 + 1000)
    assert one is not None and one.ip == "192.0.2.20" and one.monitor_counts == {"candidate": 2}
    assert missing is None


def test_assignments_agents_first_by_status(db: Engine, seeded: Seeded) -> None:
    with db.connect() as conn:
        rows = pages.list_server_assignments(conn, server_id=seeded.good)
    assert [(a.monitor_id, a.status, a.monitor_type) for a in rows] == [
        (seeded.mon_a, "active", "monitor"),
        (seeded.mon_b, "testing", "monitor"),
        (seeded.scorer, "active", "score"),
    ]


def test_history_window_and_order(db: Engine, seeded: Seeded) -> None:
    since = seeded.now - timedelta(hours=1)
    with db.connect() as conn:
        points = pages.server_history(conn, server_id=seeded.good, since=since)
    # rows every 5 min at whole minutes; the cut-off (11:00:00.123) is truncated to whole
    # seconds like the datetime(0) column, so 11:00 through 12:00 count: 13 per series
    per_series = 60 // 5 + 1
    assert len(points) == 3 * per_series  # two agents and the scorer
    assert all(p.ts >= since.replace(tzinfo=None, microsecond=0) for p in points)
    assert [p.ts for p in points] == sorted(p.ts for p in points)
    types = {p.monitor_id: p.monitor_type for p in points}
    assert types == {seeded.mon_a: "monitor", seeded.mon_b: "monitor", seeded.scorer: "score"}


def test_history_limit_keeps_the_newest(db: Engine, seeded: Seeded) -> None:
    since = seeded.now - timedelta(hours=HISTORY_HOURS + 1)
    with db.connect() as conn:
        everything = pages.server_history(conn, server_id=seeded.bad, since=since)
        newest = pages.server_history(conn, server_id=seeded.bad, since=since, limit=5)
    assert len(everything) == seeded.rows_per_monitor
    assert newest == everything[-5:]


def test_monitor_names_prefer_tls_name(db: Engine, seeded: Seeded) -> None:
    with db.connect() as conn:
        names = pages.monitor_names(conn, {seeded.mon_a, seeded.scorer})
        nothing = pages.monitor_names(conn, set())
    assert names == {
        seeded.mon_a: "alpha-abc123.devel.mon.ntppool.dev",
        seeded.scorer: "recentmedian.scores.ntp.dev",
    }
    assert nothing == {}


def test_monitor_overviews_leave_out_scorers_and_settings_rows(db: Engine, seeded: Seeded) -> None:
    with db.connect() as conn:
        rows = pages.list_monitor_overviews(conn)
    assert [m.id for m in rows] == [seeded.mon_a, seeded.mon_b, seeded.mon_v6]
    alpha = rows[0]
    assert alpha.account_name == "Example Org"
    assert alpha.client_version == "v4.1.5"
    assert alpha.last_seen is not None and alpha.status == "active"
    assert alpha.server_counts == {"active": 1, "candidate": 1}
    assert rows[2].ip_version == "v6" and rows[2].server_counts == {"candidate": 1}


def test_measurement_counts_per_server_and_agent_leave_out_scorers(
    db: Engine, seeded: Seeded
) -> None:
    with db.connect() as conn:
        counts = pages.measurement_counts(conn)
    n = seeded.rows_per_monitor
    assert counts == {
        (seeded.good, seeded.mon_a): n,
        (seeded.good, seeded.mon_b): n,
        (seeded.bad, seeded.mon_a): n,
    }
