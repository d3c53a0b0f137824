"""What every command-line program shares: one-line errors and the console-script entry.

typer is only needed for type hints here, so a program may use :func:`run_guarded` without
loading typer (the agent's long-running ``monitor`` does, to stay small).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ntpmon.common.errors import NtpmonError

if TYPE_CHECKING:
    import typer


def run_guarded(run: Callable[[], object], prog: str) -> int:
    """Call ``run``; a :class:`NtpmonError` becomes ``prog: error: message`` and exit 1."""
    try:
        run()
    except NtpmonError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


def run_app(app: typer.Typer, prog: str, argv: list[str] | None = None) -> int:
    """Run a typer app; a :class:`NtpmonError` becomes ``prog: error: message`` and exit 1.

    Usage errors keep click's own message and exit status 2.
    """
    return run_guarded(lambda: app(args=argv, prog_name=prog), prog)


def entry_point(app: typer.Typer, prog: str) -> Callable[[], None]:
    """A console-script ``main`` for ``app``."""

    def main() -> None:
        sys.exit(run_app(app, prog))

    return main
