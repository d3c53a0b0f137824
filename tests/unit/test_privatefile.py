"""write_private: 0600 from creation whatever the umask or the old file's mode, atomic, and
never through someone else's file or symlink at the temporary name."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ntpmon.common.privatefile import write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o277])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_new_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "key.pem"
    write_private(target, "secret")
    assert target.read_text() == "secret"
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


def test_replacing_a_0644_file_leaves_0600(tmp_path: Path, umask: int) -> None:
    """O_CREAT|O_TRUNC would have kept the old file's 0644."""
    target = tmp_path / "tls.key"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600


def test_a_leftover_tmp_of_a_killed_writer_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    leftover = tmp_path / "state.json.tmp"
    leftover.write_text("torn")
    leftover.chmod(0o644)
    write_private(target, "{}")
    assert target.read_text() == "{}"
    assert mode(target) == 0o600
    assert not leftover.exists()


def test_a_symlink_at_the_tmp_name_is_not_followed(tmp_path: Path) -> None:
    """The link is removed, not written through: the secret never lands in its target."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    (tmp_path / "signing.key.tmp").symlink_to(elsewhere)
    write_private(tmp_path / "signing.key", "secret")
    assert elsewhere.read_text() == "untouched"
    assert (tmp_path / "signing.key").read_text() == "secret"
    assert mode(tmp_path / "signing.key") == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "ticket-keys.json"
    write_private(target, "old")
    (tmp_path / "ticket-keys.json.tmp").mkdir()  # unlink() of a directory fails: IsADirectory
    with pytest.raises(OSError):
        write_private(target, "new")
    assert target.read_text() == "old"
