"""Two batches of one monitor in flight at once (an agent restarted mid-batch, or a duplicate
agent with the same certificate): the later one must build on the scores the earlier one
committed, never on what it read before that commit (a lost update)."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, SERVER_IPS, UA, seed
from sqlalchemy import select

from ntpmon.api import ipbytes
from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.rpcerrors import RpcError
from ntpmon.api.service import CallInfo, MonitorService
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.common.ulid import new_ulid
from ntpmon.db import api as queries
from ntpmon.db.tables import log_scores, server_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db


class PauseFirstClaim:
    """Wraps ``claim_batch``: the first caller waits just before it claims its batch."""

    def __init__(self, claim) -> None:
        self._claim = claim
        self._first = True
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self, conn, **kwargs):
        if self._first:
            self._first = False
            self.paused.set()
            assert self.resume.wait(20)
        return self._claim(conn, **kwargs)


def _request(signer: TicketSigner, monitor_id: int, batch_id: str, ips: list[str]):
    statuses = []
    for ip in ips:
        raw = ipbytes.text_to_bytes(ip)
        status = pb.ServerStatus(
            ticket=signer.sign(monitor_id, batch_id, raw), ip_bytes=raw, stratum=2
        )
        status.offset.FromNanoseconds(1_000_000)
        status.rtt.FromNanoseconds(12_345_678)
        statuses.append(status)
    return pb.SubmitResultsRequest(
        version=4, mon_id=MONITOR_IP, batch_id=batch_id.encode(), list=statuses
    )


def test_an_overlapping_older_batch_is_not_lost(db, clock, monkeypatch) -> None:
    ids = seed(db, clock)
    signer = TicketSigner(StaticKeyring({1: b"k1"}))
    service = MonitorService(db, signer, clock, ApiMetrics())
    pause = PauseFirstClaim(queries.claim_batch)
    monkeypatch.setattr(queries, "claim_batch", pause)
    ips = list(SERVER_IPS)
    older = new_ulid(clock.now()).text
    newer = new_ulid(clock.now() + timedelta(seconds=1)).text
    clock.advance(5)
    call = CallInfo(MONITOR_NAME, UA)
    outcome: dict[str, object] = {}

    def submit(name: str, batch_id: str) -> None:
        try:
            outcome[name] = service.submit_results(
                _request(signer, ids.monitor_id, batch_id, ips), call
            )
        except Exception as exc:  # reported by the asserts below
            outcome[name] = exc

    later = threading.Thread(target=submit, args=("newer", newer))
    later.start()
    assert pause.paused.wait(20)  # the newer batch has read its monitor, not yet claimed
    older_done = threading.Thread(target=submit, args=("older", older))
    older_done.start()
    # SQLite serialises writers: there the older batch waits for the newer one to commit
    older_done.join(timeout=1 if db.dialect.name == "sqlite" else 10)
    pause.resume.set()
    later.join(timeout=20)
    older_done.join(timeout=20)
    assert isinstance(outcome.get("newer"), pb.SubmitResultsResponse), outcome
    with db.connect() as conn:
        logged = conn.execute(
            select(log_scores.c.server_id, log_scores.c.score).order_by(log_scores.c.id)
        ).all()
        final = dict(
            conn.execute(
                select(server_scores.c.server_id, server_scores.c.score_raw).where(
                    server_scores.c.monitor_id == ids.monitor_id
                )
            ).all()
        )
    if db.dialect.name == "sqlite":
        # One writer at a time (BEGIN IMMEDIATE): the older batch waited for the newer one
        # and was then refused as out of order; nothing of it was written.
        refused = outcome.get("older")
        assert isinstance(refused, RpcError), outcome
        assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
        assert len(logged) == 3
        assert all(final[server] == score for server, score in logged)
        return
    # MariaDB: the older batch committed while the newer one was between its lookup and its
    # claim; the newer one must see those scores.
    assert isinstance(outcome.get("older"), pb.SubmitResultsResponse), outcome
    assert len(logged) == 6
    first = {server: score for server, score in logged[:3]}
    second = {server: score for server, score in logged[3:]}
    for server in ids.server_ids:
        # two good results in a row: the second builds on the first (1 -> 1.95), not on 0
        assert second[server] > first[server] > 0
        assert final[server] == second[server]
