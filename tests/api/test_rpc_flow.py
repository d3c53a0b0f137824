"""GetConfig → GetServers → SubmitResults over real mTLS on both dialects, rows checked."""

from __future__ import annotations

from datetime import timedelta

import grpc
import jwt
import pytest
from api_testkit import JWT_KEY, MONITOR_IP, MONITOR_IP6, SERVER_IPS, seed, snapshot, status_for
from sqlalchemy import select

from ntpmon.api import ipbytes
from ntpmon.db import admin
from ntpmon.db.models import IpVersion
from ntpmon.db.tables import log_scores, monitors, server_scores, servers
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db


def test_full_round_trip_records_rows(db, clock, api):
    ids = seed(db, clock)
    with db.begin() as conn:
        admin.ensure_system_monitor(
            conn,
            ip_version=IpVersion.V4,
            config={"samples": 4, "base_checks": ["x.example"], "otlp_log_level": "info"},
            now=clock.now(),
        )
    channel, stub = api.stub(api.client_cert())
    with channel:
        config = stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP))
        assert config.samples == 4
        assert list(config.base_checks) == [b"x.example"]
        assert config.otlp_log_level == "info"
        assert config.ip_bytes == bytes([192, 0, 2, 10])
        claims = jwt.decode(
            config.mqtt_config.jwt, JWT_KEY, algorithms=["HS384"], options={"verify_exp": False}
        )
        assert claims["exp"] - claims["iat"] == 21600
        assert claims["nbf"] == claims["iat"] - 30
        assert config.mqtt_config.prefix == b"/devel/monitors"

        batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
        assert len(batch.batch_id) == 26
        assert not batch.config.HasField("mqtt_config")
        handed = sorted(str(ipbytes.from_bytes(s.ip_bytes)) for s in batch.servers)
        assert handed == sorted(SERVER_IPS)

        clock.advance(5)
        statuses = [status_for(s, offset_ms=1.0) for s in batch.servers]
        statuses[0].ts.FromDatetime(clock.now().replace(tzinfo=None))
        reply = stub.SubmitResults(
            pb.SubmitResultsRequest(
                version=4, mon_id=MONITOR_IP, batch_id=batch.batch_id, list=statuses
            )
        )
        assert reply.ok
    with db.connect() as conn:
        rows = conn.execute(select(log_scores).order_by(log_scores.c.id)).all()
        scores = conn.execute(
            select(server_scores).where(server_scores.c.monitor_id == ids.monitor_id)
        ).all()
        monitor = conn.execute(select(monitors).where(monitors.c.id == ids.monitor_id)).one()
        strata = conn.execute(select(servers.c.stratum)).scalars().all()
    assert len(rows) == 3
    assert {r.monitor_id for r in rows} == {ids.monitor_id}
    assert all(r.step == 1 and r.score == 1 for r in rows)
    assert all(r.offset == pytest.approx(0.001) and r.rtt == 12345 for r in rows)
    assert all(r.attributes is None for r in rows)
    assert rows[0].ts == clock.now().replace(tzinfo=None, microsecond=0)
    assert all(s.score_raw == 1 and s.stratum == 2 for s in scores)
    assert all(
        s.queue_ts == (clock.now() - timedelta(seconds=5)).replace(tzinfo=None, microsecond=0)
        for s in scores
    )
    assert strata == [2, 2, 2]
    assert monitor.client_version == "v4.1.5/abc1234"
    assert monitor.last_submit is not None
    assert monitor.last_seen == clock.now().replace(tzinfo=None)
    text = api.metrics.registry.get_sample_value(
        "tests_completed_total",
        {
            "monitor": "uspao1-abc123.devel.mon.ntppool.dev",
            "ip_version": "v4",
            "result": "ok",
            "version": "4",
            "account": "acct-token",
            "account_id": str(ids.account_id),
        },
    )
    assert text == 3


def test_empty_mon_id_picks_lowest_row_and_v6_ip_bytes(db, clock, api):
    seed(db, clock)
    channel, stub = api.stub(api.client_cert())
    with channel:
        v6 = stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP6))
        anyrow = stub.GetConfig(pb.GetConfigRequest(mon_id=""))
    assert v6.ip_bytes == ipbytes.text_to_bytes(MONITOR_IP6)
    assert len(v6.ip_bytes) == 16
    assert anyrow.ip_bytes == ipbytes.text_to_bytes(MONITOR_IP)


def test_same_batch_twice_is_already_exists_and_writes_nothing(db, clock, api):
    seed(db, clock)
    channel, stub = api.stub(api.client_cert())
    with channel:
        batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
        request = pb.SubmitResultsRequest(
            version=4,
            mon_id=MONITOR_IP,
            batch_id=batch.batch_id,
            list=[status_for(s) for s in batch.servers],
        )
        assert stub.SubmitResults(request).ok
        before = snapshot(db)
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitResults(request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert snapshot(db) == before


def test_certificate_wins_over_a_garbage_bearer_token(db, clock, api):
    """Scenario 14: on the mTLS listener the authorization metadata is ignored."""
    seed(db, clock)
    channel, stub = api.stub(api.client_cert())
    with channel:
        reply = stub.GetConfig(
            pb.GetConfigRequest(mon_id=MONITOR_IP),
            metadata=[("authorization", "Bearer garbage")],
        )
    assert reply.ip_bytes == bytes([192, 0, 2, 10])
