"""An agent's registration request and the operator's approval in flight at once.

The agent polls the management API (one request per address family) while the operator
approves with ``monitor-api admin registrations approve``. Whatever the interleaving, an
approved registration must record exactly what the approval turned into monitors: no
address or host name recorded after the approval read the registration (a lost update of
the "pending only" rule, or a family recorded as registered that has no monitor).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import Engine, column, func, select, table

from ntpmon.api.registration import approve_registration
from ntpmon.common.clock import FixedClock
from ntpmon.common.environments import DeployEnv
from ntpmon.common.ulid import new_ulid
from ntpmon.db import registrations as reg
from ntpmon.db.tables import monitors

pytestmark = pytest.mark.db

IPV4 = "192.0.2.10"
IPV6 = "2001:db8::10"

_innodb_trx = table(
    "INNODB_TRX",
    column("trx_state"),
    column("trx_mysql_thread_id"),
    schema="information_schema",
)


class PauseAfterFirstRead:
    """Wraps ``get_registration``: the first caller waits right after its read."""

    def __init__(self, read: Callable[..., reg.Registration | None]) -> None:
        self._read = read
        self._first = True
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self, conn, **kwargs):
        found = self._read(conn, **kwargs)
        if self._first:
            self._first = False
            self.paused.set()
            assert self.resume.wait(20)
        return found


class Worker(threading.Thread):
    """Runs ``fn`` in one transaction; keeps its result or exception and connection id."""

    def __init__(self, db: Engine, fn: Callable[..., object]) -> None:
        super().__init__(daemon=True)
        self._db, self._fn = db, fn
        self.outcome: object = None
        self.connection_id: int | None = None
        self.started_tx = threading.Event()

    def run(self) -> None:
        try:
            with self._db.begin() as conn:
                if self._db.dialect.name != "sqlite":
                    # no table read: does not take the transaction's snapshot
                    self.connection_id = conn.execute(select(func.connection_id())).scalar()
                self.started_tx.set()
                self.outcome = self._fn(conn)
        except Exception as exc:  # reported by the asserts of the test
            self.outcome = exc
        finally:
            self.started_tx.set()


def wait_until_blocked_or_done(db: Engine, worker: Worker) -> None:
    """Return once ``worker`` has finished or waits for a row lock another one holds.

    MariaDB: the lock wait is observed in ``information_schema.INNODB_TRX``. SQLite: a
    writer waits for the other one's ``BEGIN IMMEDIATE``, which cannot be observed; there
    the order does not matter to the assertions (one writer at a time either way).
    """
    if db.dialect.name == "sqlite":
        worker.join(timeout=1)
        return
    assert worker.started_tx.wait(20)
    waiting = (
        select(func.count())
        .select_from(_innodb_trx)
        .where(
            _innodb_trx.c.trx_state == "LOCK WAIT",
            _innodb_trx.c.trx_mysql_thread_id == worker.connection_id,
        )
    )
    for _ in range(400):  # polls a condition; never asserts how long it took
        worker.join(timeout=0.05)
        if not worker.is_alive():
            return
        with db.connect() as conn:
            if conn.execute(waiting).scalar():
                return
    raise AssertionError("the worker neither finished nor waited for a lock")


def _request(reg_id: str, family: str, address: str, hostname: str, now: datetime):
    def record(conn) -> reg.Registration:
        return reg.record_registration_request(
            conn,
            registration_id=reg_id,
            family=family,
            address=address,
            hostname=hostname,
            account_ref="",
            now=now,
        )

    return record


def _approve(reg_id: str, now: datetime):
    def approve(conn):
        return approve_registration(conn, registration_id=reg_id, env=DeployEnv.DEVEL, now=now)

    return approve


def _pending_v4_registration(db: Engine, clock: FixedClock) -> str:
    reg_id = new_ulid(clock.now()).text
    with db.begin() as conn:
        _request(reg_id, "v4", IPV4, "mon1.example.net", clock.now())(conn)
    return reg_id


def _assert_registration_matches_monitors(db: Engine, reg_id: str) -> None:
    with db.connect() as conn:
        found = reg.get_registration(conn, registration_id=reg_id)
        created = conn.execute(select(monitors.c.ip, monitors.c.hostname)).all()
    assert found is not None and found.status in ("approved", "completed"), found
    recorded = {ip for ip in (found.ipv4, found.ipv6) if ip}
    assert recorded == {ip for ip, _ in created}, (found, created)
    assert {hostname for _, hostname in created} == {found.hostname}, (found, created)


def test_a_request_read_before_the_approval_does_not_change_the_approved_row(
    db, clock, monkeypatch
) -> None:
    reg_id = _pending_v4_registration(db, clock)
    pause = PauseAfterFirstRead(reg.get_registration)
    monkeypatch.setattr(reg, "get_registration", pause)
    request = Worker(db, _request(reg_id, "v6", IPV6, "renamed.example.net", clock.now()))
    request.start()
    assert pause.paused.wait(20)  # the request has read the registration as pending
    approval = Worker(db, _approve(reg_id, clock.now()))
    approval.start()
    wait_until_blocked_or_done(db, approval)
    pause.resume.set()
    request.join(timeout=20)
    approval.join(timeout=20)
    assert isinstance(request.outcome, reg.Registration), request.outcome
    assert not isinstance(approval.outcome, BaseException), approval.outcome
    _assert_registration_matches_monitors(db, reg_id)


def test_a_request_during_an_approval_is_not_recorded_as_approved(db, clock, monkeypatch) -> None:
    reg_id = _pending_v4_registration(db, clock)
    pause = PauseAfterFirstRead(reg.get_registration)
    monkeypatch.setattr(reg, "get_registration", pause)
    approval = Worker(db, _approve(reg_id, clock.now()))
    approval.start()
    assert pause.paused.wait(20)  # the approval has read the registration
    request = Worker(db, _request(reg_id, "v6", IPV6, "renamed.example.net", clock.now()))
    request.start()
    wait_until_blocked_or_done(db, request)
    pause.resume.set()
    approval.join(timeout=20)
    request.join(timeout=20)
    assert not isinstance(approval.outcome, BaseException), approval.outcome
    assert isinstance(request.outcome, reg.Registration), request.outcome
    _assert_registration_matches_monitors(db, reg_id)
