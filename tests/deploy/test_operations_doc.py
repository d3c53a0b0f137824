"""docs/operations.md names every command-line option and variable of the central programs.

The option list comes from the programs themselves (typer's command tree), so a new flag
without documentation fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from ntpmon.api.cli import app as api_app
from ntpmon.scorer.cli import app as scorer_app

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def options(app: typer.Typer) -> set[str]:
    """Every long flag and environment variable anywhere in ``app``'s command tree."""
    found: set[str] = set()

    def walk(command: Any) -> None:
        for param in command.params:
            if param.param_type_name == "option":
                found.update(o for o in param.opts + param.secondary_opts if o.startswith("--"))
                envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
                found.update(e for e in envvars if e)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found - {"--help"}


@pytest.mark.parametrize(
    "name", sorted(options(api_app) | options(scorer_app)), ids=lambda n: n.lstrip("-")
)
def test_option_is_documented(name: str) -> None:
    assert f"`{name}" in OPERATIONS or f"{name}`" in OPERATIONS, (
        f"{name} is not described in docs/operations.md"
    )
