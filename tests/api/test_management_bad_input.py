"""Every malformed input to the management API is a 4xx with a one-line reason (issue 15,
item 3), against a whole ``monitor-api server`` over real TLS: no 500, no traceback in the
log, the database unchanged, and the server still serving a good request afterwards."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
from api_testkit import MONITOR_NAME, snapshot
from sqlalchemy import Engine

from ntpmon.api.registration import hash_api_key
from ntpmon.api.runner import MonitorApiServer
from ntpmon.common.clock import FixedClock
from ntpmon.common.ulid import new_ulid
from ntpmon.db import registrations as reg

pytestmark = [pytest.mark.db, pytest.mark.e2e]

API_KEY = "ntpmon_test-key-for-malformed-token-requests"
REGISTRATION = "/monitor/api/registration"
TOKEN = "/api/oidc/token"
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    """One request and the answer it must get: ``status`` and a part of the one-line reason."""

    path: str
    body: bytes = b""
    headers: dict[str, str | bytes] = field(default_factory=dict)
    status: int = 400
    reason: str = ""
    method: str = "POST"
    registration_id: bool = True  # send a fresh valid Registration-ID
    bearer: bool = True  # send the valid API key


def form(body: bytes, reason: str = "", status: int = 400) -> Case:
    """A registration request with a fresh Registration-ID."""
    return Case(REGISTRATION, body, FORM, status, reason, bearer=False)


def token(body: bytes, reason: str = "", status: int = 400) -> Case:
    """A token request with the valid API key."""
    return Case(TOKEN, body, JSON, status, reason, registration_id=False)


CASES = {
    "17 form fields": form(b"&".join(b"f%d=x" % i for i in range(17)), reason="more than 16"),
    "form bytes not UTF-8": form(b"hostname=\xff\xfe", reason="form is not UTF-8"),
    "form %-escape not UTF-8": form(b"hostname=%ff", reason="form is not UTF-8"),
    "hostname of 256 characters": form(b"hostname=" + b"h" * 256, reason="longer than 255"),
    "account of 256 characters": form(b"a=" + b"1" * 256, reason="a is longer than 255"),
    "hostname with NUL": form(b"hostname=a%00b", reason="control characters"),
    "hostname with a newline": form(b"hostname=a%0Ab", reason="control characters"),
    "no Registration-ID": replace(form(b"", "Registration-ID"), registration_id=False),
    "Registration-ID not ASCII": replace(
        form(b"", "Registration-ID"),
        registration_id=False,
        headers={**FORM, "registration-id": ("0ß" + "0" * 23).encode("latin-1")},
    ),
    "expires_in 1e400": token(b'{"expires_in":1e400}', "integer"),
    "expires_in NaN": token(b'{"expires_in":NaN}', "must be JSON"),
    "expires_in -Infinity": token(b'{"expires_in":-Infinity}', "must be JSON"),
    "expires_in of 5000 digits": token(b'{"expires_in":' + b"9" * 5000 + b"}", "must be JSON"),
    "expires_in a string": token(b'{"expires_in":"60"}', "integer"),
    "expires_in true": token(b'{"expires_in":true}', "integer"),
    "expires_in 1.5": token(b'{"expires_in":1.5}', "integer"),
    "expires_in null": token(b'{"expires_in":null}', "integer"),
    "expires_in -1": token(b'{"expires_in":-1}', "negative"),
    "JSON array": token(b"[3600]", "JSON object"),
    "JSON nested 3000 deep": token(b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    "object nested 3000 deep": token(b'{"a":' * 3000 + b"1" + b"}" * 3000, "nested too deeply"),
    "not JSON": token(b"expires_in=60", "must be JSON"),
    "JSON bytes not UTF-8": token(b'{"expires_in":"\xff"}', "not UTF-8"),
    "token without a key": replace(token(b"{}", "unauthorized", 401), bearer=False),
    "config with a key not ASCII": Case(
        "/monitor/api/config",
        method="GET",
        headers={"authorization": b"Bearer \xff\xfe"},
        status=401,
        reason="unauthorized",
        registration_id=False,
        bearer=False,
    ),
    "registration page id of 10000 characters": Case(
        "/monitor/registration/" + "A" * 10_000,
        method="GET",
        status=404,
        reason="no such registration",
        registration_id=False,
        bearer=False,
    ),
}

GOOD = {
    "a good form": form(b"hostname=agent.example.org&a=", status=200),
    "a good token request": token(b'{"expires_in":60}', status=200),
    "an empty token request": token(b"", status=200),
}


@pytest.fixture
def http(monitor_api: MonitorApiServer, tmp_path) -> Iterator[httpx.Client]:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(monitor_api.ca.root_pem())
    context = ssl.create_default_context(cafile=str(ca_file))
    base = f"https://127.0.0.1:{monitor_api.ports['management']}"
    with httpx.Client(base_url=base, verify=context, timeout=30) as client:
        yield client


@pytest.fixture
def api_key(db: Engine, clock: FixedClock) -> str:
    """A valid key, already used at the fixed clock's time: a request that authenticates with
    it rewrites the same ``last_used``, so the snapshot shows only what bad input changed."""
    with db.begin() as conn:
        key_id = reg.insert_api_key(
            conn,
            key_hash=hash_api_key(API_KEY),
            tls_name=MONITOR_NAME,
            account_id=None,
            now=clock.now(),
        )
        reg.touch_api_key(conn, id=key_id, now=clock.now())
    return API_KEY


def send(http: httpx.Client, case: Case, clock: FixedClock) -> httpx.Response:
    headers = dict(case.headers)
    if case.registration_id:
        headers["registration-id"] = new_ulid(clock.now()).text
    if case.bearer:
        headers["authorization"] = f"Bearer {API_KEY}"
    return http.request(case.method, case.path, content=case.body, headers=headers)


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_is_a_4xx_with_one_line(name, db, clock, http, api_key, caplog):
    case = CASES[name]
    before = snapshot(db)
    with caplog.at_level(logging.INFO):
        reply = send(http, case, clock)
    assert reply.status_code == case.status, reply.text
    assert reply.text.endswith("\n") and reply.text.count("\n") == 1, reply.text
    assert case.reason in reply.text
    assert "Traceback" not in reply.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert snapshot(db) == before
    for good in GOOD.values():  # the server is still there and serves what is well-formed
        assert send(http, good, clock).status_code == 200
