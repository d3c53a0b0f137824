"""stderr lines carry sd-daemon priorities when systemd connects stderr to the journal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntpmon.agent.cli.journal import JournalPrefix, stderr_is_journal


def test_journal_stream_must_match_the_descriptor(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as fh:
        st = os.fstat(fh.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fh.fileno())
        assert not stderr_is_journal(
            {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno()
        )
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, fh.fileno())
        assert not stderr_is_journal({}, fh.fileno())


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.DEBUG, "<7>"),
        (logging.INFO, "<6>"),
        (logging.WARNING, "<4>"),
        (logging.ERROR, "<3>"),
    ],
)
def test_prefix_per_level(level: int, prefix: str) -> None:
    record = logging.makeLogRecord({"msg": "hello", "levelno": level})
    assert JournalPrefix(logging.Formatter("%(message)s")).format(record) == f"{prefix}hello"


def test_agent_prefixes_lines_when_stderr_is_the_journal(tmp_path: Path) -> None:
    """The real program with stderr on a file named by JOURNAL_STREAM (as systemd does)."""
    err = tmp_path / "stderr"
    with err.open("w") as fh:
        st = os.fstat(fh.fileno())
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run(
            [
                str(Path(sys.executable).parent / "ntppool-agent"),
                "-e",
                "devel",
                "--state-dir",
                str(tmp_path / "s"),
                "api",
                "ok",
            ],
            stderr=fh,
            stdout=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
    lines = err.read_text().splitlines()
    assert any(line.startswith("<4>") and "no API key configured" in line for line in lines)
