"""JWTs for the MQTT broker (api.md §10.2): HS384 with ``JWT_KEY``, topics per monitor name."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from ntpmon.common.environments import env_from_name

STANDARD_LIFETIME = timedelta(hours=6)
NOT_BEFORE_SLACK = timedelta(seconds=30)


def topic_prefix(env: str) -> str:
    return f"/{env}/monitors"


def standard_token(name: str, key: str, now: datetime) -> str:
    """The token a monitor uses to talk to the broker; raises DeployEnvError for a bad name."""
    prefix = topic_prefix(env_from_name(name))
    claims = {
        "subs": [f"{prefix}/requests/{name}/+"],
        "publ": [
            f"{prefix}/status/{name}/status",
            f"{prefix}/status/{name}/api-test",
            f"{prefix}/data/{name}/+",
            f"{prefix}/data/{name}/+/+",
        ],
        "sub": name,
        "iat": int(now.timestamp()),
        "nbf": int((now - NOT_BEFORE_SLACK).timestamp()),
        "exp": int((now + STANDARD_LIFETIME).timestamp()),
    }
    return jwt.encode(claims, key.encode(), algorithm="HS384")
