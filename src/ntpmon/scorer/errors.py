"""Errors of monitor-scorer; the user-facing ones are :class:`NtpmonError` (one-line exit 1)."""

from __future__ import annotations

from ntpmon.common.errors import NtpmonError


class ScorerError(NtpmonError):
    """A run or command of the scorer failed."""


class NoScorersError(ScorerError):
    """No active scorer monitor with a cursor row: run ``monitor-scorer scorer setup``."""


class BatchError(ScorerError):
    """A batch could not be scored; it was rolled back and its cursor did not move."""


class SetupError(ScorerError):
    """``scorer setup`` cannot create the scorers (e.g. ``log_scores`` is still empty)."""


class ScoringError(Exception):
    """One input row cannot be scored (no candidates, bad stored attributes)."""
