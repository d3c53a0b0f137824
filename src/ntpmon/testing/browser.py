"""Headless Chromium for tests: load a page, dump its DOM, or take a screenshot.

Uses Debian's ``chromium`` with every background service switched off, so the only traffic
is to the URL given (the tests pass loopback URLs).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ntpmon.testing.debian import ensure_command

QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """Chromium is missing or did not produce what was asked."""


def chromium_binary() -> str:
    """Debian's chromium, installed on first use where tests run as root (fresh machines)."""
    return ensure_command("chromium", "chromium-browser", package="chromium")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="ntpmon-chromium-") as profile:
        command = [chromium_binary(), *QUIET_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            command, capture_output=True, text=True, timeout=timeout, check=False
        )


def dump_dom(url: str, *, timeout: float = 90) -> str:
    """The page's DOM after load, serialised as HTML."""
    done = _run(["--dump-dom", url], timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise BrowserError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def screenshot(
    url: str, out: Path, *, width: int = 1280, height: int = 900, timeout: float = 90
) -> bytes:
    """Render ``url`` and write a PNG of the viewport to ``out``; returns the PNG bytes."""
    done = _run([f"--screenshot={out}", f"--window-size={width},{height}", url], timeout)
    if done.returncode != 0 or not out.exists():
        raise BrowserError(
            f"chromium --screenshot failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return out.read_bytes()
