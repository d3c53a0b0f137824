"""The one version string every program reports."""

from __future__ import annotations

import platform

from ntpmon import __version__


def version() -> str:
    """Semantic version with the leading ``v`` upstream's agents report (e.g. ``v4.2.0``)."""
    return f"v{__version__}"


def version_line(program: str) -> str:
    """What ``<program> version`` prints: name, version and the runtime it was built on."""
    return f"{program} {version()} (python {platform.python_version()})"


def user_agent(program: str) -> str:
    """User agent sent with every request; the server parses the version from it."""
    return f"{program}/{version()}"
