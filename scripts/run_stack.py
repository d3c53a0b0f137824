"""`make run`: the whole monitoring system on one machine.

Not built yet: the local stack (responders, monitor-api, scorer, selector, two agents) comes
with the `make run` issue once the components exist. Until then this says so and fails.
"""

from __future__ import annotations

import sys


def main() -> int:
    print(
        "make run: the local stack is not built yet; it needs the NTP engine, monitor-api,\n"
        "the scorer, the selector and the agent. Use `make test` meanwhile.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
