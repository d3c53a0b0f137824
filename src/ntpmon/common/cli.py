"""What every command-line program shares: one-line errors and the console-script entry."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from ntpmon.common.errors import NtpmonError


def run_app(app: typer.Typer, prog: str, argv: list[str] | None = None) -> int:
    """Run a typer app; a :class:`NtpmonError` becomes ``prog: error: message`` and exit 1.

    Usage errors keep click's own message and exit status 2.
    """
    try:
        app(args=argv, prog_name=prog)
    except NtpmonError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


def entry_point(app: typer.Typer, prog: str) -> Callable[[], None]:
    """A console-script ``main`` for ``app``."""

    def main() -> None:
        sys.exit(run_app(app, prog))

    return main
