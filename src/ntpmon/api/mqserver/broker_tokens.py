"""Broker JWTs besides the monitors' standard one (api.md §10.2).

The standard token lives in :mod:`ntpmon.api.mqtt_jwt` (GetConfig hands it out); this module adds
the server, admin and exporter types. All are HS384 with ``JWT_KEY`` and carry no ``iss``/``aud``
(the broker plugin cannot check them). The topic environment comes from the subject's name, so
a name that is not a monitor name gets no token.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

import jwt

from ntpmon.api.mqtt_jwt import NOT_BEFORE_SLACK, STANDARD_LIFETIME, standard_token
from ntpmon.common.environments import env_from_name


class TokenType(StrEnum):
    STANDARD = "standard"
    SERVER = "server"
    ADMIN = "admin"
    EXPORTER = "exporter"


LIFETIMES = {
    TokenType.STANDARD: STANDARD_LIFETIME,
    TokenType.SERVER: STANDARD_LIFETIME,
    TokenType.ADMIN: timedelta(minutes=5),
    TokenType.EXPORTER: timedelta(days=3 * 365),
}


def _encode(
    subject: str,
    *,
    subs: Sequence[str],
    publ: Sequence[str],
    lifetime: timedelta,
    key: str,
    now: datetime,
) -> str:
    claims = {
        "subs": list(subs),
        "publ": list(publ),
        "sub": subject,
        "iat": int(now.timestamp()),
        "nbf": int((now - NOT_BEFORE_SLACK).timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, key.encode(), algorithm="HS384")


def broker_token(kind: TokenType, subject: str, key: str, now: datetime) -> str:
    """A token of ``kind`` for ``subject``; raises DeployEnvError for a name without an env."""
    if kind is TokenType.STANDARD:
        return standard_token(subject, key, now)
    env = env_from_name(subject)
    if kind is TokenType.EXPORTER:
        return _encode(
            subject, subs=["$SYS/#"], publ=[], lifetime=LIFETIMES[kind], key=key, now=now
        )
    everything = [f"/{env}/#"]
    return _encode(
        subject, subs=everything, publ=everything, lifetime=LIFETIMES[kind], key=key, now=now
    )


def server_token(server_name: str, key: str, now: datetime) -> str:
    """What monitor-api presents as its broker password, fresh for every (re)connect."""
    return broker_token(TokenType.SERVER, server_name, key, now)
