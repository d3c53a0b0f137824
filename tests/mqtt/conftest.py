"""Fixtures for the MQTT tests: a random topic prefix per test (shared Mosquitto on
127.0.0.1:1883), the monitor rows monitor-api sees, an NTP responder and a private broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_testkit import (
    SHARED_BROKER,
    MonitorTable,
    Watcher,
    unique_prefix,
)

from ntpmon.testing.mosquitto import PrivateBroker, clear_retained
from ntpmon.testing.ntpserver import NTPResponder


@pytest.fixture
def prefix() -> Iterator[str]:
    """A topic prefix of this test's own; retained messages under it are removed afterwards."""
    value = unique_prefix()
    yield value
    watcher = Watcher(SHARED_BROKER, f"{value}/#")
    time.sleep(0.3)
    watcher.close()
    retained = sorted({topic for topic, payload, retain in watcher.messages if retain and payload})
    if retained:
        clear_retained(SHARED_BROKER, retained)


@pytest.fixture
def monitors() -> MonitorTable:
    return MonitorTable()


@pytest.fixture
def responder() -> Iterator[NTPResponder]:
    with NTPResponder("127.0.0.1") as running:
        yield running


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
