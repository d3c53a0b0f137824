"""The selector's numbers (spec/selector.md §3), named once so every rule reads the same value."""

from __future__ import annotations

from datetime import timedelta

from ntpmon.db.models import LOOKBACK, REVIEW_BATCH  # noqa: F401 - defined beside the queries using them

TARGET_ACTIVE = 7
BASE_TESTING_TARGET = 5
MIN_COUNT_FOR_TESTING = 9
MIN_COUNT_FOR_ACTIVE = 32
DEFAULT_ACCOUNT_LIMIT = 2

SUBNET_V4 = 24
SUBNET_V6 = 48
DIVERSITY_V4 = 20
DIVERSITY_V6 = 44

CONSTRAINT_RECHECK = timedelta(hours=8)
EXCESS_RECHECK = timedelta(hours=120)

BOOTSTRAP_PROMOTIONS = 5
RULE7_MAX_UNPAUSE = 2
REVIEW_AFTER_CHANGE = timedelta(minutes=60)
REVIEW_AFTER_NO_CHANGE = timedelta(minutes=20)

BASE_CHANGE_LIMIT = 2
BLOCKED_CHANGE_LIMIT = 3
EMERGENCY_CHANGE_LIMIT = 4

# Derived thresholds: removals for performance never take a group below these.
ACTIVE_SAFE_THRESHOLD = max(1, TARGET_ACTIVE - 2)
TESTING_SAFE_THRESHOLD = max(1, BASE_TESTING_TARGET - 2)

# Rule 5 promotes at most this many candidates to fill testing capacity per run.
MAX_CAPACITY_PROMOTIONS = 2

# Idle back-off of the review loop.
IDLE_BACKOFF_FIRST_S = 3.0
IDLE_BACKOFF_MAX_S = 60.0


def dynamic_testing_target(working_active: int) -> int:
    """Testing pool size: the base plus the active shortfall, so gaps refill from testing."""
    return BASE_TESTING_TARGET + max(0, TARGET_ACTIVE - working_active)
