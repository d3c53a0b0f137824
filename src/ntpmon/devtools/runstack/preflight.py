"""Before starting anything: are all the programs ``make run`` needs installed?

The stack is assembled from work that lands piece by piece; a missing piece must give one
clear message naming it, not a traceback from deep inside a child process.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

REQUIRED_COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("monitor-api", "ntpmon.api.cli", ("server",)),
    ("monitor-api", "ntpmon.api.cli", ("admin", "servers", "add")),
    ("monitor-api", "ntpmon.api.cli", ("admin", "settings", "set")),
    ("monitor-api", "ntpmon.api.cli", ("admin", "registrations", "approve")),
    ("monitor-api", "ntpmon.api.cli", ("admin", "monitors", "activate")),
    ("monitor-scorer", "ntpmon.scorer.cli", ("scorer", "setup")),
    ("monitor-scorer", "ntpmon.scorer.cli", ("scorer", "server")),
    ("monitor-scorer", "ntpmon.scorer.cli", ("selector", "server")),
    ("monitor-scorer", "ntpmon.scorer.cli", ("export", "server")),
    ("ntppool-agent", "ntpmon.agent.cli.main", ("setup",)),
    ("ntppool-agent", "ntpmon.agent.cli.main", ("monitor",)),
)
REQUIRED_MODULES = ("ntpmon.testing.ntpserver", "chdb")
"""``chdb``: the exporter's archive is chDB in the run directory (the ``chdb`` extra)."""


def _has_command(app: Any, path: Sequence[str]) -> bool:
    import typer

    command = typer.main.get_command(app)
    for word in path:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            return False
    return True


def missing_pieces(
    commands: Sequence[tuple[str, str, tuple[str, ...]]] = REQUIRED_COMMANDS,
    modules: Sequence[str] = REQUIRED_MODULES,
) -> list[str]:
    """Human-readable names of what is not there yet (empty when everything is)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    for prog, module, path in commands:
        try:
            app = importlib.import_module(module).app
        except (ImportError, AttributeError) as exc:
            missing.append(f"{prog} ({module} does not load: {exc})")
            continue
        if not _has_command(app, path):
            missing.append(f"`{prog} {' '.join(path)}`")
    return list(dict.fromkeys(missing))
