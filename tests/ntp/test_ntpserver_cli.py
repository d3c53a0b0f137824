"""The responder's command line, as `make run` starts it."""

from __future__ import annotations

import socket
import subprocess
import sys

from ntpmon.ntp import sntp
from ntpmon.testing.chronyd import free_udp_port

MS = 1_000_000


def test_cli_serves_the_configured_offset_on_every_listen_address() -> None:
    port4, port6 = free_udp_port("127.0.0.1"), free_udp_port("::1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ntpmon.testing.ntpserver",
            "--listen",
            f"127.0.0.1:{port4}",
            "--listen",
            f"[::1]:{port6}",
            "--offset",
            "0.05",
            "--stratum",
            "3",
            "--refid",
            "ABCD",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines == [
            f"ntp responder listening on 127.0.0.1:{port4}",
            f"ntp responder listening on ::1:{port6}",
        ]
        for host, port in (("127.0.0.1", port4), ("::1", port6)):
            response = sntp.query(host, port=port)
            assert abs(response.clock_offset_ns - 50 * MS) < 5 * MS
            assert response.stratum == 3
            assert response.reference_id == int.from_bytes(b"ABCD", "big")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_cli_rejects_bad_arguments_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ntpmon.testing.ntpserver", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--listen wants HOST:PORT" in result.stderr


def test_cli_reports_an_address_it_cannot_listen_on() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ntpmon.testing.ntpserver", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
