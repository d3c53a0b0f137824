"""Start-up gates and back-off: an API that is down or failing is not hammered (agent.md §7)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from agent.fake_management import ManagementServer
from ntpmon.agent.config import gates
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import ManagementClient
from ntpmon.agent.daemon.backoff import Backoff
from ntpmon.agent.daemon.scope import Cancelled, Scope

MakeConfig = Callable[..., AppConfig]


@pytest.mark.parametrize(
    ("initial", "cap", "expected"),
    [
        (
            3,
            120,
            [
                3,
                4.5,
                6.75,
                10.125,
                15.1875,
                22.78125,
                34.171875,
                51.2578125,
                76.88671875,
                115.330078125,
                120,
                120,
            ],
        ),
        (4, 120, [4, 6, 9, 13.5, 20.25, 30.375, 45.5625, 68.34375, 102.515625, 120]),
        (30, 300, [30, 45, 67.5, 101.25, 151.875, 227.8125, 300, 300]),
        (60, 1200, [60, 90, 135, 202.5, 303.75, 455.625, 683.4375, 1025.15625, 1200]),
    ],
)
def test_backoff_schedule_without_jitter(initial: float, cap: float, expected: list[float]) -> None:
    backoff = Backoff(initial, cap, rand=lambda: 0.5)
    assert [backoff.next_delay() for _ in expected] == pytest.approx(expected)
    backoff.reset()
    assert backoff.next_delay() == initial


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.7), (1.0, 1.3)])
def test_backoff_jitter_bounds(rand: float, factor: float) -> None:
    assert Backoff(3, 120, jitter=0.3, rand=lambda: rand).next_delay() == pytest.approx(3 * factor)


def _run_gate(gate: Callable[[AppConfig, Scope], None], cfg: AppConfig, seconds: float) -> bool:
    """Run ``gate`` for ``seconds``, then cancel; True when it was still waiting."""
    scope = Scope()
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            gate(cfg, scope)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(seconds)
    scope.cancel()
    thread.join(3)
    assert not thread.is_alive()
    return bool(outcome) and isinstance(outcome[0], Cancelled)


def test_api_erroring_certificate_gate_backs_off(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    mgmt.state.config_status = 503
    assert _run_gate(gates.wait_for_certificate, cfg, 1.5)
    # first back-off step is 4 s ±10 %: one attempt in 1.5 s, not a tight loop
    assert mgmt.state.count("/monitor/api/config") == 1


def test_api_down_certificate_gate_backs_off(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    cfg.management = ManagementClient("https://127.0.0.1:9", ca_file=None)  # nothing listens
    with caplog.at_level(logging.WARNING):
        assert _run_gate(gates.wait_for_certificate, cfg, 1.5)
    attempts = [r for r in caplog.records if r.getMessage() == "could not load certificate"]
    assert len(attempts) == 1
    assert "127.0.0.1:9" in attempts[0].__dict__["error"]


def test_missing_key_gate_waits_and_wakes_on_setup(make_config: MakeConfig) -> None:
    cfg = make_config()
    scope = Scope()
    done = threading.Event()

    def target() -> None:
        gates.wait_for_api_key(cfg, scope, interactive=False)
        done.set()

    thread = threading.Thread(target=target)
    thread.start()
    assert not done.wait(0.5)
    cfg.set_api_key("from-setup")  # notifies waiters, as the manager would after setup
    assert done.wait(2)
    thread.join(1)


def test_live_gate_returns_once_a_family_is_live(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    scope = Scope()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (gates.wait_for_live(cfg, scope), done.set()))
    thread.start()
    assert not done.wait(0.3)
    mgmt.state.config_doc = {"ipv4": {"status": "active", "ip": "192.0.2.1"}}
    cfg.load()
    assert done.wait(2)
    thread.join(1)


def test_refused_key_is_fatal_in_certificate_gate(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    mgmt.state.valid_keys = set()
    with pytest.raises(gates.GateError, match="api key unauthorized"):
        gates.wait_for_certificate(cfg, Scope())
