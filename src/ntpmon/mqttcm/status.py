"""The retained status message agents publish (agent.md §13.3) [COMPAT].

``{"Online":true,"Version":{"Version":"v4.2.0",...},"UpdatedMQ":"2025-06-21T10:00:00-07:00"}``.
The server reads ``Online`` and ``Version.Version``; everything else is carried as is.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ntpmon.common.errors import NtpmonError
from ntpmon.common.version import version


class StatusDecodeError(NtpmonError, ValueError):
    """A status payload that is not the JSON object agents send."""


def rfc3339_seconds(when: datetime) -> str:
    """Go's ``time.RFC3339``: whole seconds, ``Z`` for UTC, otherwise ``±hh:mm``."""
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def build_version_info(version_text: str | None = None) -> dict[str, str]:
    """The ``Version`` object: upstream's build fields, filled from this Python build."""
    return {
        "Version": version_text or version(),
        "GitRev": "",
        "GitRevShort": "",
        "BuildTime": "",
        "Runtime": f"python{platform.python_version()}",
    }


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """One status message; ``version_info`` is the whole ``Version`` object."""

    online: bool
    version_info: dict[str, Any] = field(default_factory=dict)
    updated_mq: str = ""

    @property
    def version(self) -> str:
        value = self.version_info.get("Version", "")
        return value if isinstance(value, str) else ""


def make_status(online: bool, when: datetime, version_text: str | None = None) -> StatusMessage:
    """This program's status at ``when`` (the will uses the time it was set up)."""
    return StatusMessage(online, build_version_info(version_text), rfc3339_seconds(when))


def encode_status(message: StatusMessage) -> bytes:
    doc = {
        "Online": message.online,
        "Version": message.version_info,
        "UpdatedMQ": message.updated_mq,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_status(payload: bytes) -> StatusMessage:
    """Parse a status payload; anything but a JSON object with a boolean ``Online`` is refused."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StatusDecodeError(f"status payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StatusDecodeError("status payload is not a JSON object")
    online = doc.get("Online", False)
    if not isinstance(online, bool):
        raise StatusDecodeError("status field Online is not a boolean")
    version_info = doc.get("Version") or {}
    if not isinstance(version_info, dict):
        raise StatusDecodeError("status field Version is not an object")
    updated = doc.get("UpdatedMQ", "")
    return StatusMessage(online, version_info, updated if isinstance(updated, str) else "")
