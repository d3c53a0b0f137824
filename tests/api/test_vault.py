"""Vault KV v2 ticket keys and Vault PKI, against the loopback stand-in of Vault's HTTP API.

Not a real Vault server (none is available here): :mod:`ntpmon.testing.vaultserver` answers
as Vault's API documentation says. Covered: keys created with CAS 0, rotation with CAS shared
by replicas, AppRole login again after the token expired, the token file re-read, a sealed or
unreachable Vault (one line at start; a running server keeps serving), PKI issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from api_testkit import MONITOR_IP, MONITOR_NAME, loopback_options, seed, serving, status_for
from cryptography import x509
from sqlalchemy import Engine, func, select

from ntpmon.api import vault as vault_mod
from ntpmon.api.ca import CAError
from ntpmon.api.cli import app as api_app
from ntpmon.api.ticketkeys import TicketKeyError
from ntpmon.api.tickets import TicketSigner
from ntpmon.api.vault import (
    VaultError,
    VaultKeyring,
    VaultPKI,
    VaultSession,
    VaultSettings,
)
from ntpmon.common.cli import run_app
from ntpmon.common.clock import FixedClock
from ntpmon.db.tables import log_scores
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.pb.monitor.v2 import monitor_manager_pb2_grpc as pb_grpc
from ntpmon.testing.vaultserver import FakeVault, VaultState

KEYS_PATH = "ntppool/devel/monitor-tokens"
ROLE_ID, SECRET_ID = "role-ntpmon", "secret-ntpmon"


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    state = VaultState(pki_roles={"monitors-devel"}, approles={ROLE_ID: SECRET_ID})
    with FakeVault(state) as running:
        yield running


def _token_session(vault: FakeVault) -> VaultSession:
    return VaultSession(VaultSettings(addr=vault.addr, token=vault.new_token()))


def _approle_session(vault: FakeVault) -> VaultSession:
    return VaultSession(VaultSettings(addr=vault.addr, role_id=ROLE_ID, secret_id=SECRET_ID))


def test_keys_are_created_with_cas_0_then_shared_and_rotated_once(vault, clock):
    first = VaultKeyring(_token_session(vault), "devel", clock)
    stored = vault.state.kv[KEYS_PATH]
    assert len(stored) == 1
    assert stored[0].data["token-ts"] == int(clock.now().timestamp())
    assert len(stored[0].data["token"]) >= 16
    second = VaultKeyring(_token_session(vault), "devel", clock)  # another replica
    assert first.newest() == second.newest() == (1, stored[0].data["token"].encode())

    old_ticket = TicketSigner(first).sign(7, "batch", b"\xc0\x00\x02\x01")
    assert not first.maybe_rotate()  # not due yet: nothing written
    clock.advance(11 * 3600)
    assert first.maybe_rotate()
    assert second.maybe_rotate()  # sees the fresh version 2: does not write a third
    assert len(vault.state.kv[KEYS_PATH]) == 2
    assert first.newest()[0] == second.newest()[0] == 2
    for ring in (first, second):  # tickets of version 1 still verify
        assert TicketSigner(ring).verify(old_ticket, 7, "batch", b"\xc0\x00\x02\x01")
    new_ticket = TicketSigner(first).sign(7, "batch", b"\xc0\x00\x02\x01")
    assert new_ticket.startswith(b"2-")
    assert TicketSigner(second).verify(new_ticket, 7, "batch", b"\xc0\x00\x02\x01")


def test_cas_refuses_a_second_writer_and_the_loser_adopts_the_winner(vault, clock):
    first = VaultKeyring(_token_session(vault), "devel", clock)
    second = VaultKeyring(_token_session(vault), "devel", clock)
    clock.advance(11 * 3600)
    assert first.maybe_rotate()
    with pytest.raises(VaultError, match="check-and-set parameter did not match"):
        second._write(cas=1)  # what a replica that read version 1 just before would send
    assert len(vault.state.kv[KEYS_PATH]) == 2


def test_a_follower_learns_a_newer_version_within_the_refresh_interval(vault, clock):
    owner = VaultKeyring(_token_session(vault), "devel", clock)
    follower = VaultKeyring(_token_session(vault), "devel", clock, follower=True, refresh_every=0)
    clock.advance(11 * 3600)
    assert owner.maybe_rotate()
    assert follower.newest()[0] == 2
    ticket = TicketSigner(owner).sign(1, "b", b"\x01\x02\x03\x04")
    assert TicketSigner(follower).verify(ticket, 1, "b", b"\x01\x02\x03\x04")


def test_a_follower_never_creates_keys(vault, clock):
    with pytest.raises(TicketKeyError, match="no ticket keys in Vault at kv/ntppool/devel"):
        VaultKeyring(_token_session(vault), "devel", clock, follower=True)
    assert KEYS_PATH not in vault.state.kv


def test_expired_token_is_replaced_by_approle_login(vault, clock):
    session = _approle_session(vault)
    ring = VaultKeyring(session, "devel", clock)
    assert session.logins == 1
    vault.expire_tokens()
    clock.advance(11 * 3600)
    assert ring.maybe_rotate()
    assert session.logins == 2
    seen = vault.requests_seen()
    assert seen.count(("POST", "/v1/auth/approle/login")) == 2
    assert len(vault.state.kv[KEYS_PATH]) == 2


def test_expired_token_without_approle_is_one_clear_error(vault, clock):
    ring = VaultKeyring(_token_session(vault), "devel", clock)
    vault.expire_tokens()
    with pytest.raises(TicketKeyError) as err:
        ring.maybe_rotate()
    assert "refused the token (permission denied)" in str(err.value)
    assert ring.newest()[0] == 1  # the keys held stay in use


def test_token_file_is_read_again_when_the_token_is_refused(vault, clock, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(vault.new_token() + "\n")
    settings = VaultSettings.from_environ({"VAULT_ADDR": vault.addr}, token_file=token_file)
    assert settings.token_file == token_file
    ring = VaultKeyring(VaultSession(settings), "devel", clock)
    vault.expire_tokens()
    token_file.write_text(vault.new_token())  # what a Vault agent sidecar does
    clock.advance(11 * 3600)
    assert ring.maybe_rotate()


def test_settings_need_a_token_or_approle(tmp_path):
    with pytest.raises(VaultError, match="Vault needs a token"):
        VaultSettings.from_environ({}, token_file=tmp_path / "absent")
    approle = VaultSettings.from_environ(
        {"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s"}, token_file=tmp_path / "absent"
    )
    assert (approle.addr, approle.role_id, approle.token) == (vault_mod.DEFAULT_ADDR, "r", "")


def test_pki_issues_server_and_client_certificates(vault):
    pki = VaultPKI(_approle_session(vault), "devel")
    assert pki.root_pem() == vault.state.ca.root_pem()
    names = ["api.devel.mon.ntppool.dev", "localhost", "127.0.0.1", "::1"]
    issued = pki.issue_server(names, timedelta(days=90))
    assert vault.state.issued[-1] == {
        "alt_names": "api.devel.mon.ntppool.dev,localhost",
        "ip_sans": "127.0.0.1,::1",
        "ttl": "7776000s",
        "common_name": "api.devel.mon.ntppool.dev",
    }
    chain = x509.load_pem_x509_certificates(issued.cert_pem.encode())
    root = x509.load_pem_x509_certificate(pki.root_pem().encode())
    assert len(chain) == 2 and chain[1] == root
    chain[0].verify_directly_issued_by(root)
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "BEGIN PRIVATE KEY" in issued.key_pem
    client = pki.issue_client(MONITOR_NAME, timedelta(hours=120))
    assert vault.state.issued[-1]["common_name"] == MONITOR_NAME
    assert vault.state.issued[-1]["ttl"] == "432000s"
    x509.load_pem_x509_certificates(client.cert_pem.encode())[0].verify_directly_issued_by(root)
    vault.seal()
    with pytest.raises(CAError, match=f"Vault at {vault.addr} is sealed"):
        pki.issue_client(MONITOR_NAME, timedelta(hours=1))


def _server_argv(tmp_path: Path, db: Engine, *extra: str) -> list[str]:
    loopback = "127.0.0.1:0"
    return [
        "server",
        "--data-dir",
        str(tmp_path / "data"),
        "--database-dsn",
        db.url.render_as_string(hide_password=False),
        "--listen",
        loopback,
        "--management-listen",
        loopback,
        "--health-listen",
        loopback,
        "--metrics-listen",
        loopback,
        "--no-mqtt",
        *extra,
    ]


@pytest.mark.db
@pytest.mark.parametrize(
    ("trouble", "expected"),
    [
        ("sealed", "Vault at {addr} is sealed"),
        ("unreachable", "cannot reach Vault at {addr} (ConnectionError)"),
        ("expired", "Vault at {addr} refused the token (permission denied)"),
        ("no-credentials", "Vault needs a token (VAULT_TOKEN or /vault/secrets/token)"),
    ],
)
@pytest.mark.parametrize("flags", [("--ticket-keys", "vault"), ("--ca", "vault")])
def test_unusable_vault_at_start_is_one_line(
    trouble, expected, flags, vault, db, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("MONITOR_TICKET_KEYS", raising=False)
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    if trouble == "no-credentials":
        monkeypatch.delenv("VAULT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    if trouble == "sealed":
        vault.seal()
    elif trouble == "unreachable":
        vault.stop()
    elif trouble == "expired":
        vault.expire_tokens()
    code = run_app(api_app, "monitor-api", _server_argv(tmp_path, db, *flags))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("monitor-api: error: ")
    assert expected.format(addr=vault.addr) in err
    assert len(err.strip().splitlines()) == 1
    if flags[0] == "--ticket-keys":  # no key file was made in Vault's stead
        assert not (tmp_path / "data" / "ticket-keys.json").exists()


def test_bad_choice_is_refused(db, tmp_path, capsys):
    code = run_app(api_app, "monitor-api", _server_argv(tmp_path, db, "--ca", "hsm"))
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "monitor-api: error: --ca must be one of embedded, vault"


@pytest.mark.db
def test_running_server_keeps_its_keys_and_serves_while_vault_is_sealed(
    vault, db, clock: FixedClock, tmp_path, monkeypatch
):
    monkeypatch.delenv("MONITOR_TICKET_KEYS", raising=False)
    monkeypatch.setattr(vault_mod, "REFRESH_EVERY", 0.0)  # ask Vault on every signature
    seed(db, clock)
    settings = VaultSettings(addr=vault.addr, role_id=ROLE_ID, secret_id=SECRET_ID)
    options = loopback_options(
        db, tmp_path / "data", clock=clock, ticket_keys="vault", ca="vault", vault=settings
    )
    with serving(options) as server:
        assert server.ca.root_pem() == vault.state.ca.root_pem()
        assert vault.state.issued[0]["common_name"] == "api.devel.mon.ntppool.dev"
        assert not (tmp_path / "data" / "ca").exists()  # no embedded CA was made
        cert = server.ca.issue_client(MONITOR_NAME, timedelta(hours=1))
        vault.seal()
        before = len(vault.requests_seen())
        creds = grpc.ssl_channel_credentials(
            root_certificates=server.ca.root_pem().encode(),
            private_key=cert.key_pem.encode(),
            certificate_chain=cert.cert_pem.encode(),
        )
        with grpc.secure_channel(f"127.0.0.1:{server.ports['rpc']}", creds) as channel:
            stub = pb_grpc.MonitorServiceStub(channel)
            batch = stub.GetServers(pb.GetServersRequest(mon_id=MONITOR_IP))
            assert len(batch.servers) == 3
            assert all(s.ticket.startswith(b"1-") for s in batch.servers)
            clock.advance(5)
            reply = stub.SubmitResults(
                pb.SubmitResultsRequest(
                    version=4,
                    mon_id=MONITOR_IP,
                    batch_id=batch.batch_id,
                    list=[status_for(s) for s in batch.servers],
                )
            )
            assert reply.ok
        assert len(vault.requests_seen()) > before  # it did ask the sealed Vault, and went on
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(log_scores)).scalar_one() == 3


@pytest.mark.db
def test_worker_processes_read_the_keys_from_vault_too(vault, db, clock, tmp_path, monkeypatch):
    """``--processes 2``: the worker finds Vault through the inherited environment, reads the
    keys the main process created, and never writes any."""
    monkeypatch.delenv("MONITOR_TICKET_KEYS", raising=False)
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_TOKEN", vault.new_token())
    options = loopback_options(
        db,
        tmp_path / "data",
        clock=clock,
        ticket_keys="vault",
        vault=VaultSettings.from_environ(),
        processes=2,
        dsn=db.url.render_as_string(hide_password=False),
    )
    with serving(options):
        reads = [r for r in vault.requests_seen() if r == ("GET", f"/v1/kv/data/{KEYS_PATH}")]
        writes = [r for r in vault.requests_seen() if r == ("POST", f"/v1/kv/data/{KEYS_PATH}")]
    assert len(writes) == 1  # the main process created version 1
    assert len(reads) >= 3  # main: before and after creating; the worker: at its start
    assert len(vault.state.kv[KEYS_PATH]) == 1
