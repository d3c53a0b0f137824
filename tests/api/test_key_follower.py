"""A worker process's read-only view of the ticket key file (``--processes N``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ntpmon.api.ticketkeys import FileKeyring, TicketKeyError, keyring_for
from ntpmon.api.tickets import TicketSigner
from ntpmon.common.clock import FixedClock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
IP = b"\xc0\x00\x02\x01"


def test_follower_verifies_a_version_the_owner_rotated_to_later(tmp_path):
    clock = FixedClock(NOW)
    owner = keyring_for(tmp_path, clock, {})
    follower = keyring_for(tmp_path, clock, {}, follower=True)
    assert isinstance(owner, FileKeyring) and isinstance(follower, FileKeyring)
    clock.advance(timedelta(hours=11))
    assert owner.maybe_rotate()
    ticket = TicketSigner(owner).sign(7, "B" * 26, IP)
    assert ticket.startswith(b"2-")
    assert TicketSigner(follower).verify(ticket, 7, "B" * 26, IP)  # reloaded on demand
    assert TicketSigner(follower).sign(7, "B" * 26, IP) == ticket
    assert not TicketSigner(follower).verify(ticket, 8, "B" * 26, IP)


def test_follower_never_writes_and_rereads_only_a_changed_file(tmp_path):
    clock = FixedClock(NOW)
    owner = keyring_for(tmp_path, clock, {})
    path = tmp_path / "ticket-keys.json"
    follower = FileKeyring.follower_of(path, clock)
    clock.advance(timedelta(hours=11))
    assert not follower.maybe_rotate()  # a follower re-reads, it does not rotate
    assert len(json.loads(path.read_text())["keys"]) == 1
    assert follower.newest()[0] == 1  # unchanged file: nothing newer to find
    assert owner.maybe_rotate()
    assert follower.newest() == owner.newest()  # the changed file is read again
    assert follower.secret(1) == owner.secret(1)
    assert follower.secret(9) is None


def test_follower_keeps_its_keys_when_the_file_breaks(tmp_path):
    clock = FixedClock(NOW)
    owner = keyring_for(tmp_path, clock, {})
    follower = keyring_for(tmp_path, clock, {}, follower=True)
    (tmp_path / "ticket-keys.json").write_text("{broken")
    assert follower.newest() == owner.newest()


def test_follower_without_a_key_file_is_an_error(tmp_path):
    with pytest.raises(TicketKeyError):
        keyring_for(tmp_path, FixedClock(NOW), {}, follower=True)
    assert not (tmp_path / "ticket-keys.json").exists()
