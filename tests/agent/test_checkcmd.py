"""``check IP...``: a readable table from real probes of loopback responders (devel knobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ntpmon.agent.cli.checkcmd import CheckRow, format_table
from ntpmon.testing.ntpserver import NTPResponder, ResponderSettings


def test_format_table_aligns_columns() -> None:
    rows = [
        CheckRow("192.0.2.1", 1_234_567, 250_000, 2, 0, ""),
        CheckRow("2001:db8::1", None, None, None, None, "network: i/o timeout"),
    ]
    assert format_table(rows).splitlines() == [
        "server       offset    delay     stratum  leap  error",
        "192.0.2.1    1.235 ms  0.250 ms  2        0",
        "2001:db8::1  -         -         -        -     network: i/o timeout",
    ]


def test_check_command_probes_responders(tmp_path: Path) -> None:
    good = NTPResponder("127.0.0.2", 0, ResponderSettings(offset=0.25)).start()
    kissing = NTPResponder("127.0.0.3", good.port, ResponderSettings(kiss="DENY")).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update({"MONITOR_NTP_PORT": str(good.port), "MONITOR_ALLOW_LOOPBACK": "true"})
        exe = Path(sys.executable).parent / "ntppool-agent"
        result = subprocess.run(
            [
                str(exe),
                "check",
                "127.0.0.2",
                "127.0.0.3",
                "not-an-ip",
                "-e",
                "devel",
                "--state-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    finally:
        good.stop()
        kissing.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["server", "offset", "delay", "stratum", "leap", "error"]
    good_row = next(line for line in lines if line.startswith("127.0.0.2"))
    offset_ms, delay_ms = float(good_row.split()[1]), float(good_row.split()[3])
    assert abs(offset_ms - 250.0) <= delay_ms / 2 + 0.002  # within half the round trip
    assert next(line for line in lines if line.startswith("127.0.0.3")).endswith("DENY")
    assert "could not parse IP" in result.stderr
    # outside devel the loopback filter holds
    result = subprocess.run(
        [str(exe), "check", "127.0.0.2", "-e", "test", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.stdout.splitlines()[1].endswith("loopback address")
