"""The GetConfig / GetServers / SubmitResults scenarios of api.md §18.5-18.6 over real mTLS."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest
from api_testkit import MONITOR_IP, UA, seed, status_for
from sqlalchemy import select, update

from ntpmon.api import ipbytes
from ntpmon.common.clock import db_seconds
from ntpmon.db import admin
from ntpmon.db.models import IpVersion, MonitorStatus
from ntpmon.db.tables import log_scores, monitors, server_scores, servers
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb

pytestmark = pytest.mark.db


def _labels(ids, result=None, version="4"):
    labels = {
        "monitor": "uspao1-abc123.devel.mon.ntppool.dev",
        "ip_version": "v4",
        "account": "acct-token",
        "account_id": str(ids.account_id),
    }
    if result:
        labels |= {"result": result, "version": version}
    return labels


def test_server_selection_intervals_and_order(db, clock, api):
    """Scenario 18: testing monitor; T1..T5 with their queue times and scores."""
    ids = seed(db, clock)
    now = clock.now()
    with db.begin() as conn:
        extra = [admin.create_server(conn, ip=f"198.51.100.{i}", now=now) for i in (4, 5)]
        admin.assign_monitor_to_servers(conn, monitor_id=ids.monitor_id, now=now)
    t1, t2, t3 = ids.server_ids
    t4, t5 = extra
    plan = {
        t1: ("active", 20, 10.0),
        t2: ("active", 50, 10.0),
        t3: ("active", 30, -95.0),
        t4: ("active", 130, -95.0),
        t5: ("paused", None, 0.0),
    }
    with db.begin() as conn:
        for sid, (status, minutes, score) in plan.items():
            queue = db_seconds(now - timedelta(minutes=minutes)) if minutes else None
            conn.execute(
                update(server_scores)
                .where(
                    server_scores.c.server_id == sid,
                    server_scores.c.monitor_id == ids.monitor_id,
                )
                .values(status=status, queue_ts=queue, score_raw=score)
            )
    channel, stub = api.stub(api.client_cert())
    with channel:
        reply = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
        assert api.metrics.registry.get_sample_value("tests_requested_total", _labels(ids)) == 3
        with db.connect() as conn:
            ip_of = dict(conn.execute(select(servers.c.id, servers.c.ip)).all())
            queues = dict(
                conn.execute(
                    select(server_scores.c.server_id, server_scores.c.queue_ts).where(
                        server_scores.c.monitor_id == ids.monitor_id
                    )
                ).all()
            )
        again = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
    got = [str(ipbytes.from_bytes(s.ip_bytes)) for s in reply.servers]
    assert got == [ip_of[t5], ip_of[t4], ip_of[t2]]
    assert all(not s.trace and not s.test_id for s in reply.servers)
    stamped = db_seconds(now)
    assert queues[t2] == queues[t4] == queues[t5] == stamped
    assert queues[t1] == db_seconds(now - timedelta(minutes=20))
    assert queues[t3] == db_seconds(now - timedelta(minutes=30))
    assert list(again.servers) == []
    assert len(again.batch_id) == 26
    assert api.metrics.registry.get_sample_value("tests_requested_total", _labels(ids)) == 3


def test_active_monitor_interval_score_ts_throttle_and_deletion(db, clock, api):
    ids = seed(db, clock, status=MonitorStatus.ACTIVE)
    now = clock.now()
    t1, t2, t3 = ids.server_ids
    with db.begin() as conn:
        conn.execute(
            update(server_scores)
            .where(server_scores.c.monitor_id == ids.monitor_id)
            .values(status="active", queue_ts=db_seconds(now - timedelta(minutes=10)))
        )
        conn.execute(update(servers).where(servers.c.id == t2).values(score_ts=db_seconds(now)))
        conn.execute(update(servers).where(servers.c.id == t3).values(deletion_on=now.date()))
        admin.set_system_setting(
            conn, key="monitors", value={"batch_size": 5, "interval_active": "9m"}, now=now
        )
    channel, stub = api.stub(api.client_cert())
    with channel:
        reply = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
    with db.connect() as conn:
        ip1 = conn.execute(select(servers.c.ip).where(servers.c.id == t1)).scalar()
    assert [str(ipbytes.from_bytes(s.ip_bytes)) for s in reply.servers] == [ip1]


def test_batch_size_limits_the_batch(db, clock, api):
    seed(db, clock)
    with db.begin() as conn:
        admin.set_system_setting(conn, key="monitors", value={"batch_size": 2}, now=clock.now())
    channel, stub = api.stub(api.client_cert())
    with channel:
        assert len(stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP)).servers) == 2


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ('{"nat_ip":"not-an-ip"}', grpc.StatusCode.INTERNAL),
        ("", None),
        ("{bad", grpc.StatusCode.INTERNAL),
    ],
)
def test_get_config_with_stored_config(config, code, db, clock, api):
    ids = seed(db, clock)
    with db.begin() as conn:
        conn.execute(update(monitors).where(monitors.c.id == ids.monitor_id).values(config=config))
    channel, stub = api.stub(api.client_cert())
    with channel:
        if code is None:
            assert stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP)).samples == 0
        else:
            with pytest.raises(grpc.RpcError) as err:
                stub.GetConfig(pb.GetConfigRequest(mon_id=MONITOR_IP))
            assert err.value.code() == code
            with pytest.raises(grpc.RpcError):
                stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))


def test_config_merge_with_v6_defaults_and_nat_ip(db, clock, api):
    seed(db, clock)
    with db.begin() as conn:
        admin.ensure_system_monitor(
            conn,
            ip_version=IpVersion.V6,
            config={
                "samples": 4,
                "base_checks": ["x.example", "y.example"],
                "otlp_log_level": "info",
            },
            now=clock.now(),
        )
        conn.execute(
            update(monitors)
            .where(monitors.c.ip == "2001:db8::10")
            .values(config='{"base_checks":null,"samples":9,"nat_ip":"2001:db8::99"}')
        )
    channel, stub = api.stub(api.client_cert())
    with channel:
        reply = stub.GetConfig(pb.GetConfigRequest(mon_id="2001:db8::10"))
    assert reply.samples == 9
    assert list(reply.base_checks) == []
    assert reply.otlp_log_level == "info"
    assert reply.ip_nat_bytes == ipbytes.text_to_bytes("2001:db8::99")


def test_unknown_env_label_gets_no_mqtt_config(db, clock, api):
    with db.begin() as conn:
        admin.create_monitor(
            conn,
            tls_name="x1-aaaaaa.staging.mon.ntppool.dev",
            ip="192.0.2.77",
            now=clock.now(),
            status=MonitorStatus.TESTING,
        )
    channel, stub = api.stub(api.client_cert("x1-aaaaaa.staging.mon.ntppool.dev"))
    with channel:
        reply = stub.GetConfig(pb.GetConfigRequest(mon_id="192.0.2.77"))
    assert not reply.HasField("mqtt_config")


def _submit(api, statuses_for, mon_id=MONITOR_IP, user_agent=UA):
    channel, stub = api.stub(api.client_cert(), user_agent=user_agent)
    with channel:
        stub.GetConfig(pb.GetConfigRequest(mon_id=mon_id))
        batch = stub.GetServers(pb.GetServersRequest(mon_id=mon_id))
        statuses = statuses_for(batch.servers)
        return stub.SubmitResults(
            pb.SubmitResultsRequest(
                version=4, mon_id=mon_id, batch_id=batch.batch_id, list=statuses
            )
        )


def _rows(db):
    with db.connect() as conn:
        return conn.execute(select(log_scores).order_by(log_scores.c.id)).all()


@pytest.mark.parametrize(
    ("client", "offset", "attributes"),
    [
        ("ntppool-agent/v3.8.4", None, {"error": "untrusted zero offset"}),
        ("ntppool-agent/v4.1.5", 0.0, {"error": "unexpected stratum 0"}),
    ],
)
def test_stratum_zero_by_agent_version(client, offset, attributes, db, clock, api):
    """Scenario 22."""
    ids = seed(db, clock)
    with db.begin() as conn:
        conn.execute(update(server_scores).values(score_raw=10))

    def statuses(servers):
        out = []
        for s in servers[:1]:
            st = pb.ServerStatus(ticket=s.ticket, ip_bytes=s.ip_bytes, stratum=0)
            st.offset.FromNanoseconds(0)
            out.append(st)
        return out

    assert _submit(api, statuses, user_agent=client).ok
    (row,) = _rows(db)
    assert row.offset == offset
    assert row.step == -2
    assert json.loads(row.attributes) == attributes
    assert row.score == 5
    assert row.monitor_id == ids.monitor_id


def test_leap_rtt_and_stratum_bookkeeping(db, clock, api):
    """Scenario 23: leap 2 → attributes; stratum written once, stratum 0 leaves it."""
    seed(db, clock)

    def first(servers):
        st = pb.ServerStatus(
            ticket=servers[0].ticket, ip_bytes=servers[0].ip_bytes, stratum=2, leap=2
        )
        st.offset.FromNanoseconds(2_000_000)
        st.rtt.FromNanoseconds(1_234_567_800)
        return [st]

    assert _submit(api, first).ok
    (row,) = _rows(db)
    assert (row.step, row.rtt, row.attributes) == (1, 1234567, '{"leap":2}')
    with db.begin() as conn:
        conn.execute(update(server_scores).values(queue_ts=None))
    clock.advance(2)

    def second(servers):
        st = pb.ServerStatus(
            ticket=servers[0].ticket, ip_bytes=servers[0].ip_bytes, stratum=0, error="RATE"
        )
        return [st]

    assert _submit(api, second).ok
    with db.connect() as conn:
        server_strata = conn.execute(
            select(servers.c.stratum).where(servers.c.id == row.server_id)
        ).scalar()
        score_strata = conn.execute(
            select(server_scores.c.stratum).where(server_scores.c.server_id == row.server_id)
        ).scalar()
    assert server_strata == score_strata == 2
    assert _rows(db)[-1].step == -3.5


def test_empty_batch_sets_last_submit(db, clock, api):
    """Scenario 26."""
    ids = seed(db, clock)
    assert _submit(api, lambda servers: []).ok
    with db.connect() as conn:
        last_submit = conn.execute(
            select(monitors.c.last_submit).where(monitors.c.id == ids.monitor_id)
        ).scalar()
    assert last_submit == clock.now().replace(tzinfo=None, microsecond=123000)
    assert _rows(db) == []


def test_empty_tickets_count_signature_failures(db, clock, api):
    """Scenario 27."""
    ids = seed(db, clock)

    def statuses(servers):
        return [pb.ServerStatus(ip_bytes=s.ip_bytes, stratum=2) for s in servers]

    with pytest.raises(grpc.RpcError) as err:
        _submit(api, statuses)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    value = api.metrics.registry.get_sample_value
    assert value("tests_completed_total", _labels(ids, "signature_validation")) == 3


def test_result_classification_counters(db, clock, api):
    """Scenario 28: steps {1, -5, -2} → ok, timeout, offset; the other labels exist at 0."""
    ids = seed(db, clock)

    def statuses(servers):
        good = status_for(servers[0])
        timeout = pb.ServerStatus(
            ticket=servers[1].ticket, ip_bytes=servers[1].ip_bytes, no_response=True
        )
        far = status_for(servers[2], offset_ms=900)
        return [good, timeout, far]

    assert _submit(api, statuses).ok
    value = api.metrics.registry.get_sample_value
    counts = {
        r: value("tests_completed_total", _labels(ids, r))
        for r in ("ok", "timeout", "offset", "signature_validation", "batch_out_of_order")
    }
    assert counts == {
        "ok": 1,
        "timeout": 1,
        "offset": 1,
        "signature_validation": 0,
        "batch_out_of_order": 0,
    }
    assert sorted(r.step for r in _rows(db)) == [-5, -2, 1]


def test_a_server_twice_in_one_batch_accumulates(db, clock, api):
    seed(db, clock)

    def statuses(servers):
        return [status_for(servers[0]), status_for(servers[0], offset_ms=50)]

    assert _submit(api, statuses).ok
    rows = _rows(db)
    assert [r.score for r in rows] == pytest.approx([1.0, 0.95 + 0.83365])
    with db.connect() as conn:
        raw = conn.execute(
            select(server_scores.c.score_raw).where(server_scores.c.server_id == rows[0].server_id)
        ).scalar()
    assert raw == pytest.approx(rows[1].score)


def test_ceiling_applies_and_score_decays(db, clock, api):
    seed(db, clock)
    with db.begin() as conn:
        conn.execute(update(server_scores).values(score_raw=-30))

    def statuses(servers):
        return [status_for(servers[0], offset_ms=4000), status_for(servers[1], offset_ms=200)]

    assert _submit(api, statuses).ok
    rows = _rows(db)
    assert rows[0].score == pytest.approx(-30 * 0.95 - 4)
    assert rows[1].score == pytest.approx(-30 * 0.95 + (-2.308 * 0.2 + 0.731))


def test_an_ipv4_mapped_server_address_round_trips(db, clock, api):
    ids = seed(db, clock)
    with db.begin() as conn:
        admin.create_server(conn, ip="::ffff:198.51.100.77", now=clock.now())
        admin.assign_monitor_to_servers(conn, monitor_id=ids.monitor6_id, now=clock.now())
    channel, stub = api.stub(api.client_cert())
    with channel:
        batch = stub.GetServers(pb.GetServersRequest(mon_id="2001:db8::10"))
        assert [len(s.ip_bytes) for s in batch.servers] == [16]
        reply = stub.SubmitResults(
            pb.SubmitResultsRequest(
                version=4,
                mon_id="2001:db8::10",
                batch_id=batch.batch_id,
                list=[status_for(s) for s in batch.servers],
            )
        )
    assert reply.ok
    (row,) = _rows(db)
    assert row.monitor_id == ids.monitor6_id
