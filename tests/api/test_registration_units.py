"""Registration helpers, ticket key files and admin output (pure or file-system only)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.admin_cli import render
from ntpmon.api.registration import (
    address_family,
    hash_api_key,
    hostname_slug,
    new_api_key,
    new_tls_name,
    usable_monitor_address,
)
from ntpmon.api.ticketkeys import FileKeyring, TicketKeyError, keyring_for, load_key_file
from ntpmon.api.tickets import TicketSigner
from ntpmon.common.clock import FixedClock
from ntpmon.common.environments import DeployEnv, is_valid_monitor_name

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hostname", "slug"),
    [
        ("Test Host.example.org", "test-host"),
        ("uspao1.example", "uspao1"),
        ("", "monitor"),
        ("---", "monitor"),
        ("a_b", "a-b"),
        ("x" * 40, "x" * 20),
        ("ümlaut", "mlaut"),
    ],
)
def test_hostname_slug(hostname, slug):
    assert hostname_slug(hostname) == slug


@pytest.mark.parametrize("env", list(DeployEnv))
def test_new_tls_name_is_a_valid_monitor_name(env):
    name = new_tls_name("Some Host", env)
    assert is_valid_monitor_name(name)
    assert name.startswith("some-host-")
    assert name.endswith(f".{env}.mon.ntppool.dev")


def test_api_keys_are_random_and_hashed():
    a, b = new_api_key(), new_api_key()
    assert a != b
    assert len(hash_api_key(a)) == 64
    assert a not in hash_api_key(a)


@pytest.mark.parametrize(
    ("peer", "family", "text"),
    [
        ("192.0.2.1", "v4", "192.0.2.1"),
        ("::ffff:192.0.2.1", "v4", "192.0.2.1"),
        ("2001:DB8::1", "v6", "2001:db8::1"),
    ],
)
def test_address_family(peer, family, text):
    assert address_family(peer) == (family, text)


@pytest.mark.parametrize(
    ("address", "env", "ok"),
    [
        ("127.0.0.1", DeployEnv.DEVEL, True),
        ("127.0.0.1", DeployEnv.PROD, False),
        ("10.1.2.3", DeployEnv.TEST, False),
        ("fe80::1", DeployEnv.PROD, False),
        ("8.8.8.8", DeployEnv.PROD, True),
        ("2a00:1450::1", DeployEnv.TEST, True),
    ],
)
def test_usable_monitor_address(address, env, ok):
    assert usable_monitor_address(address, env) is ok


def test_key_file_created_private_kept_and_rotated(tmp_path):
    path = tmp_path / "ticket-keys.json"
    first = load_key_file(path, NOW)
    assert first.newest()[0] == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    same = load_key_file(path, NOW + timedelta(hours=9))
    assert same.newest() == first.newest()
    rotated = load_key_file(path, NOW + timedelta(hours=11))
    assert rotated.newest()[0] == 2
    assert rotated.secret(1) == first.newest()[1]
    assert len(json.loads(path.read_text())["keys"]) == 2


def test_file_keyring_rotates_while_running_and_old_tickets_verify(tmp_path):
    clock = FixedClock(NOW)
    ring = keyring_for(tmp_path, clock, {})
    assert isinstance(ring, FileKeyring)
    signer = TicketSigner(ring)
    ticket = signer.sign(7, "B" * 26, b"\x01\x02\x03\x04")
    clock.advance(timedelta(hours=9))
    assert not ring.maybe_rotate()
    clock.advance(timedelta(hours=2))
    assert ring.maybe_rotate()
    assert signer.sign(7, "B" * 26, b"\x01\x02\x03\x04").startswith(b"2-")
    assert signer.verify(ticket, 7, "B" * 26, b"\x01\x02\x03\x04")


def test_environment_keys_win_and_bad_ones_are_errors(tmp_path):
    ring = keyring_for(tmp_path, FixedClock(NOW), {"MONITOR_TICKET_KEYS": "3:abc"})
    assert ring.newest() == (3, b"abc")
    assert not (tmp_path / "ticket-keys.json").exists()
    with pytest.raises(TicketKeyError):
        keyring_for(tmp_path, FixedClock(NOW), {"MONITOR_TICKET_KEYS": "nope"})
    (tmp_path / "ticket-keys.json").write_text("{broken")
    with pytest.raises(TicketKeyError):
        keyring_for(tmp_path, FixedClock(NOW), {})


def test_render_table_and_json():
    rows = [{"id": 1, "name": "a", "when": NOW}, {"id": 22, "name": None, "when": None}]
    table = render(rows, ["id", "name", "when"], as_json=False).splitlines()
    assert table[0].split() == ["ID", "NAME", "WHEN"]
    assert table[1].split() == ["1", "a", NOW.isoformat()]
    assert table[2].split() == ["22"]
    assert json.loads(render(rows, ["id", "name"], as_json=True)) == [
        {"id": 1, "name": "a"},
        {"id": 22, "name": None},
    ]
