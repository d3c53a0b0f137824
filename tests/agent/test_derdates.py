"""The stdlib certificate parsing that replaced ``cryptography`` in the agent: the dates equal
cryptography's reading for both ASN.1 time types, chains are read at their leaf, and bad input
is refused with the same messages (agent.md §6.2; docs/agent.md, Memory footprint)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption

from agent.certs_helper import TestCA, self_signed
from ntpmon.agent.config.certs import CertificateError, parse_key_pair
from ntpmon.agent.config.derdates import DERError, validity

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(hours=-1), timedelta(hours=24)),  # UTCTime both
        (timedelta(days=-30), timedelta(days=365 * 30)),  # notAfter 2056: GeneralizedTime
        (timedelta(days=-365 * 30), timedelta(days=1)),  # notBefore 1996: UTCTime 19xx
        (timedelta(0), timedelta(seconds=1)),
    ],
)
def test_dates_equal_cryptography(start: timedelta, end: timedelta) -> None:
    issued = self_signed(start, end, now=NOW)
    reference = x509.load_pem_x509_certificate(issued.cert_pem)
    expected = (reference.not_valid_before_utc, reference.not_valid_after_utc)
    assert validity(ssl.PEM_cert_to_DER_cert(issued.cert_pem.decode())) == expected
    pair = parse_key_pair(issued.cert_pem, issued.key_pem)
    assert (pair.not_before, pair.not_after) == expected


def test_chain_is_read_at_its_leaf(test_ca: TestCA) -> None:
    issued = test_ca.issue("x.devel.mon.ntppool.dev", lifetime=timedelta(hours=5))
    chain = issued.cert_pem + test_ca.pem
    leaf = x509.load_pem_x509_certificate(issued.cert_pem)
    pair = parse_key_pair(chain, issued.key_pem)
    assert (pair.not_before, pair.not_after) == (
        leaf.not_valid_before_utc,
        leaf.not_valid_after_utc,
    )


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "truncated"),
        (b"\x30\x05\x30", "truncated"),
        (b"\x02\x01\x00", "unexpected tag"),
        (b"\x30\x85\x00\x00\x00\x00\x01\x00", "bad length"),
    ],
)
def test_malformed_der_is_refused(der: bytes, message: str) -> None:
    with pytest.raises(DERError, match=message):
        validity(der)


def test_cut_certificate_is_refused() -> None:
    der = ssl.PEM_cert_to_DER_cert(self_signed().cert_pem.decode())
    with pytest.raises(DERError):
        validity(der[:40])


def test_encrypted_key_is_refused_without_prompting() -> None:
    issued = self_signed()
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CertificateError, match="could not parse private key"):
        parse_key_pair(issued.cert_pem, encrypted)


def test_certificate_block_with_bad_content_is_refused() -> None:
    bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError, match="could not parse certificate"):
        parse_key_pair(bad, self_signed().key_pem)
