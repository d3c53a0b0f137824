"""``monitor-api admin`` and ``ca root`` on both dialects: output, effects and one-line errors."""

from __future__ import annotations

import json

import pytest
from api_testkit import seed, snapshot
from sqlalchemy import select

from ntpmon.api.ca import EmbeddedCA
from ntpmon.api.cli import app as cli_app
from ntpmon.common.cli import run_app
from ntpmon.db import registrations as reg
from ntpmon.db.tables import monitors, server_scores

pytestmark = pytest.mark.db


def _run(db, capsys, *args):
    code = run_app(
        cli_app,
        "monitor-api",
        [*args, "--database-dsn", db.url.render_as_string(hide_password=False)],
    )
    out = capsys.readouterr()
    return code, out.out, out.err


def test_accounts_servers_settings_and_monitor_status(db, clock, capsys):
    ids = seed(db, clock)
    assert _run(db, capsys, "admin", "accounts", "add", "Example Org")[0] == 0
    code, out, _ = _run(db, capsys, "admin", "accounts", "list", "--json")
    assert code == 0
    assert [a["name"] for a in json.loads(out)] == ["acct", "Example Org"]
    code, out, _ = _run(db, capsys, "admin", "servers", "add", "2001:DB8::5")
    assert (code, out.strip().startswith("server ")) == (0, True)
    code, out, _ = _run(db, capsys, "admin", "servers", "list")
    assert "2001:db8::5" in out
    # the v6 monitor row is live (testing) so it became a candidate for the new v6 server
    with db.connect() as conn:
        assigned = conn.execute(
            select(server_scores.c.monitor_id).where(server_scores.c.monitor_id == ids.monitor6_id)
        ).all()
    assert len(assigned) == 1
    assert _run(db, capsys, "admin", "settings", "set", "monitors", '{"batch_size": 3}')[0] == 0
    assert json.loads(_run(db, capsys, "admin", "settings", "get", "monitors")[1]) == {
        "batch_size": 3
    }
    code, out, _ = _run(
        db, capsys, "admin", "monitors", "pause", "uspao1-abc123.devel.mon.ntppool.dev"
    )
    assert code == 0
    with db.connect() as conn:
        statuses = (
            conn.execute(select(monitors.c.status).where(monitors.c.tls_name.like("uspao1%")))
            .scalars()
            .all()
        )
    assert statuses == ["paused", "paused"]
    assert _run(db, capsys, "admin", "monitors", "resume", str(ids.monitor_id))[0] == 0
    listing = json.loads(_run(db, capsys, "admin", "monitors", "list", "--json")[1])
    assert {m["id"]: m["status"] for m in listing} == {
        ids.monitor_id: "testing",
        ids.monitor6_id: "paused",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("admin", "monitors", "pause", "nobody.devel.mon.ntppool.dev"), "no monitor"),
        (("admin", "monitors", "delete", "99999"), "no monitor"),
        (("admin", "servers", "add", "not-an-ip"), "not an IP address"),
        (("admin", "servers", "remove", "99999"), "no server"),
        (("admin", "settings", "set", "monitors", "{bad"), "must be JSON"),
        (("admin", "settings", "get", "nothing"), "no setting"),
        (("admin", "registrations", "approve", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), "no registration"),
    ],
)
def test_admin_errors_are_one_line_and_change_nothing(args, message, db, clock, capsys):
    seed(db, clock)
    before = snapshot(db)
    code, _, err = _run(db, capsys, *args)
    assert code == 1
    assert err.startswith("monitor-api: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(db) == before


def test_approving_twice_or_with_an_unknown_account_is_refused(db, clock, capsys):
    with db.begin() as conn:
        reg.record_registration_request(
            conn,
            registration_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
            family="v4",
            address="192.0.2.44",
            hostname="h",
            account_ref="",
            now=clock.now(),
        )
    before = snapshot(db)
    code, _, err = _run(
        db, capsys, "admin", "registrations", "approve", "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--account", "424242",
    )  # fmt: skip
    assert (code, "no account" in err) == (1, True)
    assert snapshot(db) == before
    assert (
        _run(db, capsys, "admin", "registrations", "approve", "01arz3ndektsv4rrffq69g5fav")[0] == 0
    )
    code, _, err = _run(
        db, capsys, "admin", "registrations", "approve", "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    )
    assert (code, "already approved" in err) == (1, True)


def test_ca_root_prints_the_pem_or_says_what_to_do(tmp_path, capsys):
    assert run_app(cli_app, "monitor-api", ["ca", "root", "--data-dir", str(tmp_path)]) == 1
    assert "start 'monitor-api server' once" in capsys.readouterr().err
    ca = EmbeddedCA.load_or_create(tmp_path / "ca")
    assert run_app(cli_app, "monitor-api", ["ca", "root", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ca.root_pem()


def test_db_mon_prints_rows_with_merged_config(db, clock, capsys):
    seed(db, clock)
    code, out, _ = _run(db, capsys, "db", "mon", "uspao1-abc123.devel.mon.ntppool.dev")
    assert code == 0
    lines = out.splitlines()
    assert "192.0.2.10 testing" in lines[0]
    assert json.loads(lines[1].split("config: ", 1)[1])["samples"] == 0
    assert "2001:db8::10" in lines[2]
    assert _run(db, capsys, "db", "mon", "nobody.devel.mon.ntppool.dev")[1] == "No monitor found\n"
