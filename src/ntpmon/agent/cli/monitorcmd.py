"""``monitor``'s body, free of typer so the long-running process can start without it."""

from __future__ import annotations

import os
import signal

from ntpmon.agent.cli import options as opts
from ntpmon.agent.cli.globalopts import Globals, open_app_config
from ntpmon.agent.daemon.runner import MonitorOptions, run_monitor
from ntpmon.agent.daemon.scope import Scope
from ntpmon.agent.mqtt.bridge import monitor_bridge
from ntpmon.ntp.kerneltime import receive_stamping_kept_on


def monitor_command(g: Globals, *, once: bool, sanity_only: bool) -> None:
    """Run the monitor: fetch work, probe servers, submit results."""
    cfg = open_app_config(g)
    scope = Scope()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scope.cancel())
    knobs = opts.devel_knobs(g.env.value, os.environ)
    mqtt = monitor_bridge(
        cfg, g.env.value, port=knobs.port, allow_loopback=knobs.allow_loopback, environ=os.environ
    )
    with receive_stamping_kept_on():  # kernel receive stamps for every query, not just some
        run_monitor(
            cfg,
            MonitorOptions(
                once,
                sanity_only,
                g.ipv4,
                g.ipv6,
                g.rpc,
                knobs,
                debug=g.debug,
                telemetry=g.telemetry,
            ),
            scope,
            environ=os.environ,
            hooks=mqtt.hooks(),
            background=[mqtt.run],
        )
