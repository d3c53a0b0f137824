"""deploy/compose.yaml checked without a container runtime, as docs/operations.md §2.4 uses it.

* ``cp deploy/compose.env.example deploy/.env`` is enough: every variable the file requires is
  in the example, and the file interpolates with compose's rules to valid services.
* Every ntpmon command line (``command:``, including the ones inside ``sh -c``) parses with the
  program's own command-line parser down to its leaf command, so a misspelt option or command
  fails here — the parse stops before anything runs.
* The anonymous, plain-TCP broker is not published on the host, and monitor-api, the only
  client on the compose network, is told it is plain TCP.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml

# typer 0.29 carries its own copy of click: its command tree and errors are these classes
from typer._click import exceptions as cli_errors

from ntpmon.api.cli import app as api_app
from ntpmon.scorer.cli import app as scorer_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
EXAMPLE = DEPLOY / "compose.env.example"
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
PROGRAMS: Mapping[str, typer.Typer] = {"monitor-api": api_app, "monitor-scorer": scorer_app}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def example_env() -> dict[str, str]:
    env = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution (the subset above); a missing required one fails."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        empty = not value
        if operator in {":?", "?"} and (value is None or (operator == ":?" and empty)):
            raise AssertionError(f"required variable {name} is missing: {argument}")
        if operator in {":-", "-"} and (value is None or (operator == ":-" and empty)):
            return argument
        return value or ""

    return VARIABLE.sub(replace, text)


def services() -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE_TEXT, example_env()))["services"]


def required_variables() -> set[str]:
    """Variables without a default: compose refuses to start without them."""
    return {m.group(1) for m in VARIABLE.finditer(COMPOSE_TEXT) if m.group(2) in {None, ":?", "?"}}


def test_the_example_env_file_holds_every_required_variable() -> None:
    missing = required_variables() - set(example_env())
    assert not missing, f"compose needs {sorted(missing)}; add them to {EXAMPLE.name}"
    assert set(services()) >= {"mysql", "mosquitto", "monitor-api", "db-init"}


def test_every_example_variable_is_used_and_documented() -> None:
    used = {m.group(1) for m in VARIABLE.finditer(COMPOSE_TEXT)}
    for name in example_env():
        assert name in used, f"{name} in {EXAMPLE.name} is not used by compose.yaml"
        assert f"`{name}" in OPERATIONS, f"{name} is not described in docs/operations.md"
    assert "cp deploy/compose.env.example deploy/.env" in OPERATIONS
    assert "cp deploy/compose.env.example deploy/.env" in COMPOSE_TEXT


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${EMPTY:-d}-${EMPTY-d}-${UNSET-d}", env) == "x-d--d"
    with pytest.raises(AssertionError, match="UNSET"):
        interpolate("${UNSET:?say so}", env)


def program_invocations(command: list[str] | str) -> list[list[str]]:
    """The ntpmon command lines of a ``command:``: the list itself, or each one that a
    ``sh -c`` script runs (after ``exec``, ``until``, ``;``, ``&&`` ...)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    found = []
    for clause in re.split(r";|&&|\|\||\bdo\b|\bdone\b", argv[2]):
        words = shlex.split(clause)
        while words and words[0] in {"exec", "until", "while", "if", "then", "!"}:
            words = words[1:]
        if words and words[0] in PROGRAMS:
            found.append(words)
    return found


def parse_to_leaf(app: typer.Typer, name: str, args: list[str]) -> list[str]:
    """Parse ``args`` with the program's click command tree without invoking anything.

    Each level's options are parsed (an unknown option or a bad value raises); the rest names
    the subcommand, resolved the same way. Returns the command path.
    """
    command: Any = typer.main.get_command(app)
    context = command.make_context(name, list(args))
    path = [name]
    while hasattr(command, "resolve_command"):  # a group
        rest = [*context._protected_args, *context.args]
        if not rest:
            break
        sub_name, sub, sub_args = command.resolve_command(context, rest)
        assert sub is not None and sub_name is not None, f"{path}: no command {rest[0]!r}"
        context = sub.make_context(sub_name, sub_args, parent=context)
        command = sub
        path.append(sub_name)
    # a group with nothing after it is a complete command only for `monitor-scorer db`
    assert not hasattr(command, "resolve_command") or path == [name, "db"], path
    return path


def ntpmon_commands() -> list[tuple[str, list[str]]]:
    return [
        (service, argv)
        for service, spec in services().items()
        if "command" in spec and "ntpmon" in str(spec.get("image", ""))
        for argv in program_invocations(spec["command"])
    ]


@pytest.mark.parametrize(
    ("service", "argv"), ntpmon_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_command_parses_with_the_programs_own_cli(service: str, argv: list[str]) -> None:
    path = parse_to_leaf(PROGRAMS[argv[0]], argv[0], argv[1:])
    assert len(path) >= 2, f"{service}: {argv} names no command"


def test_every_ntpmon_service_has_its_command_checked() -> None:
    checked = {service for service, _ in ntpmon_commands()}
    assert checked == {"db-init", "monitor-api", "monitor-scorer", "monitor-selector"}
    scorer = [argv for service, argv in ntpmon_commands() if service == "monitor-scorer"]
    assert [a[:3] for a in scorer] == [
        ["monitor-scorer", "scorer", "setup"],
        ["monitor-scorer", "scorer", "server"],
    ]


def test_the_parser_rejects_a_misspelt_option_and_command() -> None:
    with pytest.raises(cli_errors.NoSuchOption):
        parse_to_leaf(api_app, "monitor-api", ["server", "--mqtt-hots", "x"])
    with pytest.raises(cli_errors.UsageError):
        parse_to_leaf(scorer_app, "monitor-scorer", ["scorer", "serve"])
    with pytest.raises(cli_errors.BadParameter):
        parse_to_leaf(scorer_app, "monitor-scorer", ["selector", "server", "--metrics-port", "x"])


def mosquitto_settings() -> dict[str, list[str]]:
    mount = services()["mosquitto"]["volumes"][0].split(":")[0]
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / mount).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value.strip())
    return settings


def test_the_anonymous_broker_is_not_published() -> None:
    broker = mosquitto_settings()
    assert broker.get("allow_anonymous") == ["true"]
    assert "ports" not in services()["mosquitto"], "an anonymous broker must stay internal"


def test_monitor_api_speaks_plain_tcp_to_the_plain_broker() -> None:
    broker = mosquitto_settings()
    assert not {"certfile", "cafile", "keyfile"} & set(broker), "the broker is plain TCP"
    (argv,) = program_invocations(services()["monitor-api"]["command"])
    assert "--mqtt-plain" in argv
    assert argv[argv.index("--mqtt-host") + 1] == "mosquitto"
    # --mqtt-plain is refused outside devel once JWT_KEY switches MQTT on: the example says so
    assert example_env()["DEPLOYMENT_MODE"] == "devel"


def test_metrics_ports_are_distinct_and_published() -> None:
    published = {
        service: {str(p).split(":")[-1] for p in spec.get("ports", [])}
        for service, spec in services().items()
    }
    assert "9000" in published["monitor-api"]
    assert "9001" in published["monitor-scorer"]
    assert "9002" in published["monitor-selector"]
