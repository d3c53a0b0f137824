"""Atomic replacement, reads, migration, and a process killed mid-write (agent.md §5.3, §5.5)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.unprivileged import run_python, shared_tmp
from ntpmon.agent.config import persist
from ntpmon.agent.config.persist import StateFileError, migrate_runtime_dir, replace_file


@pytest.mark.parametrize("content", [b"new", b"", b"\0" * 10240])
def test_replace_file_exact_content_mode_and_no_tmp(tmp_path: Path, content: bytes) -> None:
    """state.json holds the API key: 0600 under a umask of 022, even over a 0644 file."""
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")
    target.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        replace_file(target, content)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == content
    assert not (tmp_path / "state.json.tmp").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_key_file_gets_0600(tmp_path: Path) -> None:
    replace_file(tmp_path / "key.pem", b"secret")
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_readers_never_see_partial_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    contents = [b"A" * 50000, b"B" * 60000, b"C" * 70000, b"D" * 80000]
    replace_file(target, contents[0])
    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set() or len(seen) < 60:
            seen.append(target.read_bytes())

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for content in contents[1:]:
        replace_file(target, content)
    done.set()
    for t in threads:
        t.join()
    assert seen and all(s in contents for s in seen)


def test_replace_file_into_unwritable_dir_fails() -> None:
    """Run as an unprivileged user: the directory's mode really refuses the write."""
    with shared_tmp() as base:
        target_dir = base / "ro"
        target_dir.mkdir(mode=0o755)
        (target_dir / "state.json").write_text("old")
        code = (
            "import sys; from pathlib import Path\n"
            "from ntpmon.agent.config.persist import replace_file, StateFileError\n"
            "try:\n    replace_file(Path(sys.argv[1]), b'new')\n"
            "except StateFileError as e:\n    print('refused', e)\n"
        )
        result = run_python(code, str(target_dir / "state.json"))
        assert result.stdout.startswith("refused could not write"), result
        assert (target_dir / "state.json").read_text() == "old"


def test_replace_file_to_invalid_path_fails() -> None:
    with pytest.raises(StateFileError, match="could not write"):
        replace_file(Path("/dev/null/invalid"), b"x")


WRITER = """
import sys
from pathlib import Path
from ntpmon.agent.config.persist import replace_file
target = Path(sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    i += 1
    replace_file(target, (('{"gen": %d, "pad": "' % i) + "x" * 200000 + '"}').encode())
"""


def test_killed_during_writes_old_file_survives_whole(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites state.json in a loop; the file always parses whole."""
    target = tmp_path / "state.json"
    target.write_text('{"gen": 0, "pad": ""}')
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.03 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        doc = json.loads(target.read_bytes())
        assert isinstance(doc["gen"], int)
        assert doc["gen"] == 0 or len(doc["pad"]) == 200000


def test_read_file_missing_none_unreadable_error(tmp_path: Path) -> None:
    assert persist.read_file(tmp_path / "nope") is None
    with shared_tmp() as base:
        target = base / "state.json"
        target.write_text("{}")
        target.chmod(0)
        code = (
            "import sys; from pathlib import Path\n"
            "from ntpmon.agent.config.persist import read_file\n"
            "print(read_file(Path(sys.argv[1])))\n"
        )
        refused = run_python(code, str(target))
        assert "could not read" in refused.stderr and "Permission denied" in refused.stderr
        target.chmod(0o644)
        assert run_python(code, str(target)).stdout.strip() == "b'{}'"


def test_migration_copies_state_cert_and_key(tmp_path: Path) -> None:
    old = tmp_path / "runtime" / "test"
    old.mkdir(parents=True)
    (old / "state.json").write_bytes(b'{"API":{"APIKey":"test-key-123"}}')
    (old / "cert.pem").write_bytes(b"test-cert-data")
    (old / "key.pem").write_bytes(b"test-key-data")
    new = tmp_path / "state" / "test"
    raw = migrate_runtime_dir(new, "test", str(tmp_path / "runtime"))
    assert raw == b'{"API":{"APIKey":"test-key-123"}}'
    for name in ("state.json", "cert.pem", "key.pem"):
        assert (new / name).read_bytes() == (old / name).read_bytes()
        assert (old / name).exists()
    assert stat.S_IMODE((new / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(new.stat().st_mode) == 0o700


def test_migration_noops(tmp_path: Path) -> None:
    new = tmp_path / "state" / "test"
    assert migrate_runtime_dir(new, "test", None) is None
    assert migrate_runtime_dir(new, "test", str(tmp_path / "runtime")) is None
    only_cert = tmp_path / "rt2" / "test"
    only_cert.mkdir(parents=True)
    (only_cert / "state.json").write_text("{}")
    (only_cert / "cert.pem").write_text("c")
    migrate_runtime_dir(new, "test", str(tmp_path / "rt2"))
    assert (new / "cert.pem").read_text() == "c"
    assert not (new / "key.pem").exists()
