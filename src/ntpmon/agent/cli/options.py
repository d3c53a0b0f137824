"""Global options (agent.md §4.1–§4.3): the defaults file, options after the sub-command, and
where the state directory is.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

DEFAULTS_FILE = Path("/etc/default/ntppool-agent")
APP_DIR = "ntppool-agent"
# options of the root command that take a value, and flags without one
VALUE_OPTIONS = frozenset(
    {
        "-e",
        "--env",
        "--deploy-env",
        "--state-dir",
        "--log-level",
        "--ca-file",
        "--rpc-protocol",
        "--rpc-ca-file",
        "--telemetry",
    }
)
FLAG_OPTIONS = frozenset({"--debug", "--ipv4", "--no-ipv4", "--ipv6", "--no-ipv6"})


class OptionsError(NtpmonError):
    """A global option or the defaults file cannot be used."""


def load_defaults_file(path: Path, environ: MutableMapping[str, str]) -> None:
    """Export ``KEY=value`` lines not already set; ``#`` lines are skipped [IMPROVE].

    Quotes are kept as upstream does. A missing file is fine, an unreadable one is an error.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OptionsError(f"could not read {path}: {exc}") from None
    for line in text.splitlines():
        if line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if key and key not in environ:
            environ[key] = value


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Move global options found after the sub-command in front of it (click wants them there).

    Everything after ``--`` is left alone.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in FLAG_OPTIONS:
            front.append(arg)
        elif name in VALUE_OPTIONS:
            front.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                front.append(argv[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def user_config_dir(environ: MutableMapping[str, str]) -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if environ.get("XDG_CONFIG_HOME"):
        return Path(environ["XDG_CONFIG_HOME"])
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".config"
    raise OptionsError("could not find config dir")


def resolve_state_dir(flag: str | None, environ: MutableMapping[str, str]) -> Path:
    """``--state-dir``, ``MONITOR_STATE_DIR``, ``STATE_DIRECTORY``, then the user config dir."""
    for candidate in (flag, environ.get("MONITOR_STATE_DIR"), environ.get("STATE_DIRECTORY")):
        if candidate:
            chosen = Path(candidate)
            break
    else:
        chosen = user_config_dir(environ) / APP_DIR
    resolved = chosen.expanduser().absolute()
    runtime = environ.get("RUNTIME_DIRECTORY")
    text = str(resolved)
    if (
        runtime
        and text.startswith(("/var/run/ntppool-agent", "/run/ntppool-agent"))
        and (resolved == Path(runtime) or Path(runtime) in resolved.parents)
    ):
        log.warning("state directory is a runtime directory; data will be lost on reboot")
    return resolved


@dataclass(frozen=True, slots=True)
class DevelKnobs:
    """Test/devel-only probe settings; ignored outside ``devel`` (contract item 6)."""

    port: int = 123
    allow_loopback: bool = False


def devel_knobs(env: str, environ: MutableMapping[str, str]) -> DevelKnobs:
    if env != "devel":
        return DevelKnobs()
    raw_port = environ.get("MONITOR_NTP_PORT", "")
    try:
        port = int(raw_port) if raw_port else 123
    except ValueError:
        raise OptionsError(f"invalid MONITOR_NTP_PORT {raw_port!r}") from None
    allow = environ.get("MONITOR_ALLOW_LOOPBACK", "").lower() in {"1", "true", "yes"}
    return DevelKnobs(port, allow)
