"""`make run`: the whole monitoring system on one machine (see docs/operations.md §1).

    .venv/bin/python scripts/run_stack.py [--database-dsn URL] [--run-dir DIR] ...

Exits non-zero with a clear message when a part of the system is not installed yet.
"""

from __future__ import annotations

from ntpmon.devtools.runstack.main import main

if __name__ == "__main__":
    raise SystemExit(main())
