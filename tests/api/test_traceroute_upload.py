"""``POST /monitor/api/traceroute`` against the real monitor-api (HTTPS, MariaDB and SQLite):
an agent without MQTT uploads the trace GetServers asked for with its API key. A good upload is
stored and shows on the server's page; a trace claimed for another monitor, or of a server the
key's monitor does not check, is refused; bad input is a one-line 400, no key a 401, and the
body limit is the traceroute message's, not the other management bodies'."""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import datetime

import pytest
from api_testkit import MONITOR_NAME, SERVER_IPS, Seed, seed
from sqlalchemy import Engine, func, select

from ntpmon.agent.config.httpclient import HttpClient, HttpResponse
from ntpmon.api.registration import hash_api_key, new_api_key
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.clock import FixedClock
from ntpmon.db import admin
from ntpmon.db import registrations as reg
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import traceroutes
from ntpmon.traceroute.result import (
    MAX_MESSAGE_BYTES,
    Hop,
    StopReason,
    TraceMessage,
    TraceResult,
)

pytestmark = [pytest.mark.db]

OTHER_NAME = "deber1-zzz999.devel.mon.ntppool.dev"


def trace_to(target: str, started: datetime) -> TraceResult:
    """Two hops, the second the destination."""
    return TraceResult(
        target=target,
        port=123,
        started=started,
        hops=(
            Hop(1, "192.0.2.1", (120, 130, None)),
            Hop(2, target, (900, 950, 1000), reached=True),
        ),
        stop=StopReason.REACHED,
        source="192.0.2.10",
    )


class Uploader:
    """Raw HTTPS calls to the management listener, trusting the server's CA."""

    def __init__(self, server: MonitorApiServer) -> None:
        ctx = ssl.create_default_context(cadata=server.ca.root_pem())
        self.url = f"https://127.0.0.1:{server.ports['management']}/monitor/api/traceroute"
        self.http = HttpClient(context=ctx, timeout=10, user_agent="test")

    def post(self, body: bytes, key: str | None) -> HttpResponse:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return self.http.request("POST", self.url, headers=headers, json_bytes=body)


@pytest.fixture
def seeded(db: Engine, clock: FixedClock) -> Seed:
    return seed(db, clock)


@pytest.fixture
def api_key(db: Engine, clock: FixedClock, seeded: Seed) -> str:
    """An API key of the seeded monitor, as a completed registration leaves it."""
    key = new_api_key()
    with db.begin() as conn:
        reg.insert_api_key(
            conn,
            key_hash=hash_api_key(key),
            tls_name=MONITOR_NAME,
            account_id=seeded.account_id,
            now=clock.now(),
        )
    return key


@pytest.fixture
def uploader(monitor_api: MonitorApiServer) -> Uploader:
    return Uploader(monitor_api)


def stored_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(traceroutes)).scalar() or 0)


def message(target: str, clock: FixedClock, monitor: str = MONITOR_NAME) -> TraceMessage:
    return TraceMessage(trace_to(target, clock.now()), monitor=monitor)


def test_good_upload_is_stored_and_shown(
    db: Engine,
    clock: FixedClock,
    seeded: Seed,
    api_key: str,
    uploader: Uploader,
    monitor_api: MonitorApiServer,
) -> None:
    resp = uploader.post(message(SERVER_IPS[0], clock).to_payload(), api_key)
    assert resp.status_code == 201, resp.text
    row_id = resp.json()["ID"]
    with db.connect() as conn:
        row = conn.execute(select(traceroutes).where(traceroutes.c.id == row_id)).one()
    assert (row.monitor_id, row.server_id) == (seeded.monitor_id, seeded.server_ids[0])
    assert (row.reason, row.reached, row.stop, row.hops) == ("health", True, "reached", 2)

    page = uploader.http.request(
        "GET", f"http://127.0.0.1:{monitor_api.ports['health']}/servers/{seeded.server_ids[0]}"
    )
    assert page.status_code == 200
    assert "Traceroutes" in page.text
    assert MONITOR_NAME.split(".", 1)[0] in page.text
    assert "192.0.2.1" in page.text


def test_forged_monitor_is_refused(
    db: Engine, clock: FixedClock, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    with db.begin() as conn:
        admin.create_monitor(conn, tls_name=OTHER_NAME, ip="192.0.2.99", now=clock.now())
    resp = uploader.post(message(SERVER_IPS[0], clock, OTHER_NAME).to_payload(), api_key)
    assert resp.status_code == 403
    assert resp.text == "Monitor does not belong to this api key\n"
    assert stored_count(db) == 0


def test_another_monitors_server_is_refused(
    db: Engine, clock: FixedClock, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    now = clock.now()
    with db.begin() as conn:
        other = admin.create_monitor(
            conn,
            tls_name=OTHER_NAME,
            ip="192.0.2.99",
            now=now,
            account_id=seeded.account_id,
            status=MonitorStatus.TESTING,
        )
        admin.create_server(conn, ip="198.51.100.77", now=now)
        admin.assign_monitor_to_servers(conn, monitor_id=other, now=now)
    resp = uploader.post(message("198.51.100.77", clock).to_payload(), api_key)
    assert resp.status_code == 403
    assert resp.text == "the target is not a server of this monitor\n"
    not_pool = uploader.post(message("203.0.113.200", clock).to_payload(), api_key)
    assert not_pool.status_code == 403
    assert stored_count(db) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "traceroute message is not JSON"),
        (b"[1, 2]", "traceroute message is not an object"),
        (b'{"Reason": "health"}', "traceroute message has neither a result nor an error"),
        (b"[" * 10_000 + b"]" * 10_000, "traceroute message is nested too deeply"),
    ],
    ids=["syntax", "array", "empty", "deep"],
)
def test_malformed_bodies_are_400(
    db: Engine, seeded: Seed, api_key: str, uploader: Uploader, body: bytes, reason: str
) -> None:
    resp = uploader.post(body, api_key)
    assert resp.status_code == 400, resp.text
    assert resp.text == reason + "\n"
    assert stored_count(db) == 0


def test_missing_monitor_is_400(
    db: Engine, clock: FixedClock, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    resp = uploader.post(message(SERVER_IPS[0], clock, monitor="").to_payload(), api_key)
    assert (resp.status_code, resp.text) == (400, "Monitor is missing\n")


def test_without_a_valid_key_401(
    db: Engine, clock: FixedClock, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    body = message(SERVER_IPS[0], clock).to_payload()
    assert uploader.post(body, None).status_code == 401
    assert uploader.post(body, "not-a-key").status_code == 401
    assert stored_count(db) == 0


def test_agent_side_failure_is_accepted_not_stored(
    db: Engine, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    body = TraceMessage(None, "no route to host", monitor=MONITOR_NAME).to_payload()
    resp = uploader.post(body, api_key)
    assert resp.status_code == 200
    assert resp.json() == {"Stored": False, "Reason": "the trace failed on the agent"}
    assert stored_count(db) == 0


def test_body_limit_is_the_trace_messages(
    db: Engine, clock: FixedClock, seeded: Seed, api_key: str, uploader: Uploader
) -> None:
    """Above the other endpoints' 8 KiB but within a trace message's 64 KiB: stored; above: 413."""
    base = message(SERVER_IPS[0], clock)
    roomy = replace(base, error="x" * 9000).to_payload()
    assert 8192 < len(roomy) < MAX_MESSAGE_BYTES
    assert uploader.post(roomy, api_key).status_code == 201
    huge = replace(base, error="x" * MAX_MESSAGE_BYTES).to_payload()
    resp = uploader.post(huge, api_key)
    assert resp.status_code == 413
    assert resp.text == f"body larger than {MAX_MESSAGE_BYTES} bytes\n"
    assert stored_count(db) == 1
