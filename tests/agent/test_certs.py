"""Certificate parsing and the renewal threshold (agent.md §6.2, §19.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.certs_helper import TestCA, self_signed
from ntpmon.agent.config.certs import CertificateError, certificate_validity, parse_key_pair

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "end", "valid", "next_check"),
    [
        (-H, timedelta(days=365), True, None),
        (-2 * H, timedelta(minutes=10), False, timedelta(minutes=130) / 3),
        (-2 * H, -H, False, timedelta(minutes=20)),
        (timedelta(minutes=5), 24 * H, True, None),
        (-3 * H, timedelta(minutes=30), False, timedelta(minutes=70)),
        (-H, timedelta(days=90), True, None),
        (-timedelta(days=250), timedelta(days=50), False, 2 * H),  # recheck capped at 2 h
    ],
)
def test_validity_table(
    start: timedelta, end: timedelta, valid: bool, next_check: timedelta | None
) -> None:
    ok, nxt = certificate_validity(NOW + start, NOW + end, NOW)
    assert ok is valid
    assert nxt > timedelta(0)
    if next_check is not None:
        assert nxt == next_check
    else:
        lifetime = end - start
        assert nxt == (NOW + end - lifetime / 3) - NOW + timedelta(seconds=1)


def test_parse_pair_and_dates() -> None:
    issued = self_signed(-H, timedelta(days=90))
    cert = parse_key_pair(issued.cert_pem, issued.key_pem)
    assert abs(cert.not_after - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    valid, nxt = cert.validity(datetime.now(UTC))
    assert valid and nxt > H


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        (b"garbage", b"garbage", "could not parse certificate"),
        (b"", b"", "empty"),
        (None, b"corrupted key", "could not parse private key"),
        (None, "other", "does not match"),
    ],
)
def test_bad_pairs_are_refused(cert: bytes | None, key: bytes | str, message: str) -> None:
    good = self_signed()
    other = self_signed()
    key_pem = other.key_pem if key == "other" else key
    with pytest.raises(CertificateError, match=message):
        parse_key_pair(cert if cert is not None else good.cert_pem, key_pem)  # type: ignore[arg-type]


def test_expired_ca_issued_certificate_is_invalid(test_ca: TestCA) -> None:
    issued = test_ca.issue("x.devel.mon.ntppool.dev", lifetime=H, start=-2 * H)
    cert = parse_key_pair(issued.cert_pem, issued.key_pem)
    assert cert.validity(datetime.now(UTC))[0] is False
