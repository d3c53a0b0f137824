"""The stack's process supervisor with real child processes."""

from __future__ import annotations

import sys
import time

import pytest

from ntpmon.devtools.runstack.processes import (
    StackError,
    StackInterruptedError,
    Supervisor,
    child_environment,
)

SLEEPER = """
import signal, sys, time
def bye(*_):
    print("got SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready port=1234", flush=True)
while True:
    time.sleep(0.1)
"""
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + (
    "print('up', flush=True)\nwhile True: time.sleep(0.1)"
)


def test_child_environment_drops_stack_steering_variables(monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_STATE_DIR", "/somewhere")
    monkeypatch.setenv("API_HOST", "https://example.net")
    monkeypatch.setenv("DATABASE_DSN", "mysql://elsewhere")
    env = child_environment({"DEPLOYMENT_MODE": "devel"})
    assert "MONITOR_STATE_DIR" not in env and "API_HOST" not in env
    assert "DATABASE_DSN" not in env and env["DEPLOYMENT_MODE"] == "devel"
    assert env["PATH"]


def test_start_wait_for_output_and_graceful_stop(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    child = sup.start("sleeper", [sys.executable, "-c", SLEEPER], {})
    port = sup.wait_for_output(
        child, lambda t: t.split("port=")[1].split()[0] if "port=" in t else None, timeout=30
    )
    assert port == "1234" and child.running() and sup.exited() == []
    assert sup.stop_all() == {"sleeper": 0}
    assert "got SIGTERM" in child.log.read_text()


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    child = sup.start("stubborn", [sys.executable, "-c", STUBBORN], {})
    sup.wait_for_output(child, lambda t: "up" if "up" in t else None, timeout=30)
    assert sup.stop(child, timeout=0.5) == -9


def test_wait_for_output_reports_an_exit_with_the_log(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    child = sup.start("crash", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], {})
    with pytest.raises(StackError, match=r"crash exited with status 3:\nboom"):
        sup.wait_for_output(child, lambda t: None, timeout=30)
    assert sup.exited() == [child]


def test_wait_for_output_gives_up_after_the_timeout(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    child = sup.start("sleeper", [sys.executable, "-c", SLEEPER], {})
    started = time.monotonic()
    with pytest.raises(StackError, match="not ready after 1 s"):
        sup.wait_for_output(child, lambda t: None, timeout=1)
    assert time.monotonic() - started >= 1
    sup.stop_all()


def test_run_returns_output_or_raises_with_stderr(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    assert sup.run("echo", [sys.executable, "-c", "print('hello')"], {}) == "hello\n"
    with pytest.raises(StackError, match=r"fail failed \(exit 2\): bad input"):
        sup.run(
            "fail",
            [sys.executable, "-c", "import sys; print('bad input', file=sys.stderr); sys.exit(2)"],
            {},
        )
    log = (tmp_path / "logs" / "commands.log").read_text()
    assert "hello" in log and "(exit 2)" in log


def test_wait_for_output_stops_when_asked(tmp_path) -> None:
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    child = sup.start("sleeper", [sys.executable, "-c", SLEEPER], {})
    with pytest.raises(StackInterruptedError, match="interrupted while waiting for sleeper"):
        sup.wait_for_output(child, lambda t: None, timeout=60, stop=lambda: True)
    sup.stop_all()
