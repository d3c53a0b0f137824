"""The console scripts answer --help and version, and report bad configuration in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ntpmon import __version__

SCRIPTS = ("ntppool-agent", "monitor-api", "monitor-scorer")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of the installed console scripts; ``cwd`` keeps stray database.yaml files out."""
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run(
        [str(exe), *args[1:]], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_version(script: str) -> None:
    helped = run(script, "--help")
    assert helped.returncode == 0 and "Usage" in helped.stdout
    version = run(script, "version")
    assert version.returncode == 0
    assert version.stdout.startswith(f"{script} v{__version__} ")


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "mysql+pymysql://u:hunter2@127.0.0.1:1/x",
            "monitor-api: error: cannot connect to mysql at 127.0.0.1:1 (database x)",
        ),
        ("postgresql://u:hunter2@h/x", "monitor-api: error: unsupported database 'postgresql'"),
        ("u:hunter2@tcp(h:notaport)/x", "monitor-api: error: invalid port 'notaport' in DSN"),
    ],
)
def test_bad_database_is_one_line(dsn: str, expected: str, tmp_path: Path) -> None:
    result = run(
        "monitor-api", "db", "check", "--database-dsn", dsn, "--connect-timeout", "0", cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected)
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_db_init_and_check_on_sqlite(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'x.sqlite'}"
    missing = run("monitor-api", "db", "check", "--database-dsn", dsn, cwd=tmp_path)
    assert missing.returncode == 1 and "table accounts is missing" in missing.stderr
    init = run("monitor-api", "db", "init", "--database-dsn", dsn, cwd=tmp_path)
    assert init.returncode == 0 and "schema ready" in init.stdout
    check = run("monitor-scorer", "db", "check", "--database-dsn", dsn, cwd=tmp_path)
    assert check.returncode == 0 and "schema ok" in check.stdout
