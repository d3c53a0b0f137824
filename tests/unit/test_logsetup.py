"""Structured log lines carry their context and never lose the message."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ntpmon.common.logsetup import LogLevelError, parse_level, setup_logging


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("debug", logging.DEBUG),
        ("INFO", logging.INFO),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
def test_levels(name: str, level: int) -> None:
    assert parse_level(name) == level


def test_bad_level() -> None:
    with pytest.raises(LogLevelError, match="invalid log level 'loud'"):
        parse_level("loud")


def test_key_value_and_json() -> None:
    out = io.StringIO()
    setup_logging("debug", fmt="kv", stream=out)
    logging.getLogger("t").info("batch accepted", extra={"monitor": "m1", "batch": "01AB c"})
    line = out.getvalue().strip()
    assert 'msg="batch accepted"' in line and "monitor=m1" in line and 'batch="01AB c"' in line
    out = io.StringIO()
    setup_logging("info", fmt="json", stream=out)
    logging.getLogger("t").debug("hidden")
    logging.getLogger("t").warning("x", extra={"server": 7})
    doc = json.loads(out.getvalue())
    assert (doc["msg"], doc["level"], doc["server"]) == ("x", "WARNING", 7)
    logging.getLogger().handlers.clear()
