"""The metrics listener options of ``monitor-scorer scorer run|server`` and ``selector server``.

One choice for every program (issue 16): Prometheus scrapes from another host, so every metrics
listener binds all IPv4 addresses by default, as upstream's ``:9000`` does and as
``monitor-api --metrics-listen :9000`` does. An operator who wants them private passes
``--metrics-addr 127.0.0.1`` (``--metrics-listen 127.0.0.1:9000`` for monitor-api) or firewalls
the ports. Defined once so the scorer and the selector cannot drift apart again.
"""

from __future__ import annotations

from typing import Annotated

import typer

ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - metrics are scraped from another host (see above)
DEFAULT_PORT = 9000

MetricsPortOption = Annotated[
    int,
    typer.Option("--metrics-port", help="Serve Prometheus /metrics here (0 picks a free port)."),
]
MetricsAddrOption = Annotated[
    str,
    typer.Option(
        "--metrics-addr",
        help="Address of the metrics listener (default: all IPv4 addresses; 127.0.0.1 keeps "
        "it local).",
    ),
]
