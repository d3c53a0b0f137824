"""What the deployment tests share: the checkout, the install prefix, and running a step.

A module of its own (not ``conftest``): several test folders have a ``conftest``, so importing
names from one by that name is ambiguous.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/ntpmon"
TIMEOUT_S = 300


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``argv`` to completion; a failure shows its output."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, **kwargs
    )
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done
