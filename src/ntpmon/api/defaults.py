"""Defaults shared by the command line and the server objects (no heavy imports here)."""

from __future__ import annotations

# gRPC handler threads per process (RPCs running at once, database connections of the pool);
# calls beyond them wait, SubmitResults first (ntpmon.api.admission). A call mostly waits on
# the database, so a few threads keep the GIL busy; every thread more is GIL hand-offs, and a
# running SubmitResults shares the GIL with more calls. 50 busy agents on 2 cores, 3 runs each:
# 6 threads 2,950-3,150 results/s with SubmitResults p99 30-35 ms, 8 threads 3,130-3,190/s
# with p99 45-51 ms, 4 threads ~2,700/s with p99 22 ms, 64 threads ~60 % more CPU per batch.
DEFAULT_WORKERS = 6
