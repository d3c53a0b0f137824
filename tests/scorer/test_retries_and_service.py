"""Retries only on transient errors (SQ4, SQ19 fixed) and the service loop's error handling."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from ntpmon.common.clock import FixedClock
from ntpmon.db.config import DatabaseSettings
from ntpmon.db.engine import SESSION_INIT, create_db_engine
from ntpmon.db.tables import scorer_status
from ntpmon.db.tx import RetryPolicy
from ntpmon.scorer.errors import BatchError, ScorerError
from ntpmon.scorer.metrics import ScorerMetrics
from ntpmon.scorer.runner import Runner
from ntpmon.scorer.service import serve
from ntpmon.testing.databases import temporary_mysql_database

from .conftest import EV, M3, M4, RM, S1, S3, build_world

pytestmark = pytest.mark.db


@pytest.fixture
def mariadb() -> Iterator[Engine]:
    with temporary_mysql_database("ntpmon_scorer_retry") as engine:
        yield engine


def test_lock_wait_timeout_is_retried_then_succeeds(mariadb: Engine) -> None:
    world = build_world(mariadb, FixedClock(datetime.now(UTC)))
    world.log(S1, M3, 19.0, 1.0, world.now - timedelta(minutes=1))
    impatient = create_db_engine(
        DatabaseSettings(
            url=mariadb.url,
            connect_args={"init_command": SESSION_INIT + ", innodb_lock_wait_timeout=1"},
        )
    )
    holder = mariadb.connect()
    holder.begin()
    holder.execute(
        select(scorer_status.c.id).where(scorer_status.c.scorer_id == EV).with_for_update()
    )
    release = threading.Timer(2.5, holder.rollback)
    release.start()
    try:
        metrics = ScorerMetrics()
        runner = Runner(
            impatient,
            metrics=metrics,
            clock=world.clock,
            retry=RetryPolicy(initial=0.2, factor=1.0, max_interval=0.2, max_elapsed=20.0),
        )
        assert runner.run() == 2
    finally:
        release.join()
        holder.close()
        impatient.dispose()
    retried = metrics.retries.labels(scorer="every", reason="lock_wait_timeout")._value.get()
    assert retried >= 1
    assert metrics.deadlocks._value.get() == 0
    assert world.cursor(EV) == world.cursor(RM)


def test_a_scoring_failure_is_not_retried(db: Engine, clock: FixedClock) -> None:
    world = build_world(db, clock, scorers=(RM,))
    world.assign(S3, M4, "paused")
    world.log(S3, M4, 5.0, -1.0, world.now - timedelta(minutes=10))
    sleeps: list[float] = []
    metrics = ScorerMetrics()
    runner = Runner(db, metrics=metrics, clock=clock, retry=RetryPolicy(), sleep=sleeps.append)
    with pytest.raises(BatchError):
        runner.run()
    assert sleeps == []
    assert (metrics.plain.errors, metrics.plain.runs) == (1, 1)
    assert metrics.plain.processed == {}


def unreachable_runner() -> Runner:
    engine = create_db_engine(
        DatabaseSettings(url=make_url("mysql+pymysql://root@127.0.0.1:1/nothing"))
    )
    return Runner(engine, metrics=ScorerMetrics(), clock=FixedClock())


def test_once_mode_fails_on_a_connection_error() -> None:
    runner = unreachable_runner()
    with pytest.raises(ScorerError, match=r"database error: .*Can't connect"):
        serve(runner, once=True)
    assert runner.metrics.plain.errors == 1


def test_service_mode_backs_off_on_connection_errors_and_stops_on_request() -> None:
    runner = unreachable_runner()
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert serve(runner, once=False, stop=stop) == 0  # the backoff sleep ends on request
    assert runner.metrics.plain.errors >= 1


def test_a_setting_warning_is_logged_once_not_every_run(
    db: Engine, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """``scorer server`` asks for the batch size every run; a missing setting is said once,
    and a changed one (here: unparsable) is said again."""
    from ntpmon.common.clock import db_seconds
    from ntpmon.db.tables import system_settings
    from ntpmon.scorer.runner import DEFAULT_BATCH_SIZE

    runner = Runner(db, clock=clock)
    with caplog.at_level(logging.WARNING, logger="ntpmon.scorer.runner"):
        assert [runner.batch_size() for _ in range(3)] == [DEFAULT_BATCH_SIZE] * 3
        with db.begin() as conn:
            conn.execute(
                system_settings.insert().values(
                    key="scorer", value="{not json", created_on=db_seconds(clock.now())
                )
            )
        assert runner.batch_size() == DEFAULT_BATCH_SIZE
        assert runner.batch_size() == DEFAULT_BATCH_SIZE
    assert [r.getMessage() for r in caplog.records] == [
        "no scorer settings, using the default batch size",
        "unparsable scorer settings, using the default batch size",
    ]
