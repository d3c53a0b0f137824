"""The deployment files parse, point at real programs, and are documented."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from ntpmon.testing.debian import ensure_command

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(project["project"]["scripts"])


def test_there_are_units_for_api_scorer_and_selector() -> None:
    names = {u.name for u in UNITS}
    assert {"monitor-api.service", "monitor-scorer.service", "monitor-selector.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_runs_an_installed_program(unit: Path) -> None:
    commands = re.findall(r"^Exec\w+=(\S+)", unit.read_text(), re.M)
    assert commands
    assert {Path(c).name for c in commands} <= console_scripts()


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` with the programs pointed at this checkout's scripts.

    A template unit (``name@.service``) is verified as an instance (``name@test.service``).
    """
    tool = ensure_command("systemd-analyze", package="systemd")
    bindir = Path(sys.executable).parent
    program = re.compile(r"/opt/ntpmon/bin/(" + "|".join(console_scripts()) + r")\b")
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name.replace("@.", "@test.")
        copy.write_text(program.sub(lambda m: f"{bindir}/{m.group(1)}", unit.read_text()))
        copies.append(str(copy))
    done = subprocess.run(
        [tool, "verify", *copies], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "Invalid" not in done.stderr, done.stderr


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_mysql8_mosquitto_and_the_three_programs() -> None:
    services = compose()["services"]
    assert services["mysql"]["image"].split(":")[-1].startswith("8")
    assert "mosquitto" in services["mosquitto"]["image"]
    programs = {
        name: " ".join(map(str, s["command"]))
        for name, s in services.items()
        if s.get("image", "").startswith("localhost/ntpmon")
    }
    assert "monitor-api server" in programs["monitor-api"]
    assert "monitor-scorer scorer server" in programs["monitor-scorer"]
    assert "monitor-scorer selector server" in programs["monitor-selector"]
    assert "monitor-api db init" in programs["db-init"]
    mount = services["mosquitto"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mount).is_file()


def test_compose_build_uses_the_containerfile() -> None:
    build = compose()["x-ntpmon"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Containerfile")


def test_containerfile_copies_existing_paths_and_runs_a_program() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    cmd = re.search(r'^CMD \["([^"]+)"', text, re.M)
    assert cmd and cmd.group(1) in console_scripts()


def environment_names() -> set[str]:
    names = set()
    for service in compose()["services"].values():
        names |= set(service.get("environment") or {})
    names |= set(compose()["x-ntpmon"]["environment"])
    example = (DEPLOY / "ntpmon.env.example").read_text()
    names |= set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.M))
    return names - {"MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}


@pytest.mark.parametrize("name", sorted(environment_names()))
def test_every_deployment_variable_is_documented(name: str) -> None:
    assert f"`{name}" in OPERATIONS, f"{name} is not described in docs/operations.md"


def test_compose_variables_are_documented() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for name in set(re.findall(r"\$\{([A-Z_]+)", text)):
        assert name in OPERATIONS, name
