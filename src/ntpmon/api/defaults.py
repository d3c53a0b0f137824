"""Defaults shared by the command line and the server objects (no heavy imports here)."""

from __future__ import annotations

# gRPC handler threads per process (RPCs running at once, database connections of the pool);
# calls beyond them wait, SubmitResults first (ntpmon.api.admission). Each call mostly waits on
# the database, but every thread more is GIL hand-offs and context switches: with 50 busy
# agents on 2 cores, 8 threads served ~20 % more batches than 16 at ~20 % less CPU per batch.
DEFAULT_WORKERS = 8
