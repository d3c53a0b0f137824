"""``ntppool-agent``: measures NTP servers for the NTP Pool and reports to monitor-api.

Global options may come before or after the command (upstream's parser allows both and its
own hints put them after); ``main`` moves them in front before parsing. A plain ``monitor``
command line runs without loading typer (see ``lightargv``); every other command line, help
and usage errors included, goes to the typer app in ``commands``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ntpmon.agent.cli import options as opts
from ntpmon.common.cli import run_guarded

PROG = "ntppool-agent"


def __getattr__(name: str) -> Any:
    """``app`` stays importable from here without loading typer for ``monitor``."""
    if name == "app":
        from ntpmon.agent.cli.commands import app

        return app
    raise AttributeError(name)


def _run_light_monitor(argv: list[str]) -> int | None:
    """Run ``monitor`` without typer when its command line is plain: its exit status, or None."""
    from ntpmon.agent.cli.lightargv import parse_monitor_argv

    parsed = parse_monitor_argv(argv, os.environ)
    if parsed is None:
        return None

    def run() -> None:
        if parsed.root.rpc_protocol == "grpc":
            from ntpmon.agent.daemon.footprint import import_grpc_without_asyncio

            import_grpc_without_asyncio()  # before anything imports grpc
        from ntpmon.agent.cli.globalopts import apply_root
        from ntpmon.agent.cli.monitorcmd import monitor_command

        g = apply_root(parsed.root, "monitor")
        assert g is not None  # only ``version`` has no globals
        monitor_command(g, once=parsed.once, sanity_only=parsed.sanity_only)

    return run_guarded(run, PROG)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: defaults file, hoisted global options, one-line errors."""
    args = sys.argv[1:] if argv is None else argv
    try:
        opts.load_defaults_file(opts.DEFAULTS_FILE, os.environ)
    except opts.OptionsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    hoisted = opts.hoist_global_options(args)
    code = _run_light_monitor(hoisted)
    if code is None:
        from ntpmon.agent.cli.commands import app
        from ntpmon.common.cli import run_app

        code = run_app(app, PROG, hoisted)
    sys.exit(code)
