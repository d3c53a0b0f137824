"""Errors of the selector that concern one server: logged, and the server is rescheduled."""

from __future__ import annotations

from ntpmon.common.errors import NtpmonError


class SelectorError(NtpmonError):
    """A server could not be reviewed."""


class ServerNotFoundError(SelectorError):
    def __init__(self, server_id: int) -> None:
        super().__init__(f"server {server_id} not found")
        self.server_id = server_id


class MissingRttError(SelectorError):
    """Every rtt of a monitor in the window is NULL, so it has no priority (§2.2, §12 Q17)."""

    def __init__(self, monitor_id: int) -> None:
        super().__init__(f"monitor {monitor_id} has no rtt in the last 24 h, so no priority")
        self.monitor_id = monitor_id
