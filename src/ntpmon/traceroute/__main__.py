"""``python -m ntpmon.traceroute IP``: one trace, printed as the JSON agents publish.

For operators (what does this monitor's path to a server look like?) and for the namespace
tests, which run it inside a client namespace as an unprivileged user.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ntpmon.ntp.kerneltime import receive_stamping_kept_on
from ntpmon.traceroute.engine import TraceError, TraceOptions, trace
from ntpmon.traceroute.result import to_json


def _parser() -> argparse.ArgumentParser:
    defaults = TraceOptions()
    parser = argparse.ArgumentParser(prog="python -m ntpmon.traceroute", description=__doc__)
    parser.add_argument("target", help="IP address of the NTP server")
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--source", default=None, help="local address to send from")
    parser.add_argument("--max-hops", type=int, default=defaults.max_hops)
    parser.add_argument("--probes", type=int, default=defaults.probes_per_hop)
    parser.add_argument("--probe-timeout", type=float, default=defaults.probe_timeout_s)
    parser.add_argument("--budget", type=float, default=defaults.time_budget_s)
    parser.add_argument("--max-silent", type=int, default=defaults.max_silent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = TraceOptions(
        port=args.port,
        max_hops=args.max_hops,
        probes_per_hop=args.probes,
        probe_timeout_s=args.probe_timeout,
        time_budget_s=args.budget,
        max_silent=args.max_silent,
        local_address=args.source,
    )
    try:
        with receive_stamping_kept_on():
            result = trace(args.target, options)
    except TraceError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(to_json(result), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
