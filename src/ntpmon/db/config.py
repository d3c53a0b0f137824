"""Where the database is: ``DATABASE_DSN`` (Go-DSN or SQLAlchemy URL) and ``database.yaml``.

Precedence follows upstream (spec/database.md §7): ``mysql.dsn`` from the first config file
found wins over ``DATABASE_DSN``; non-empty ``user``/``pass``/``dbname`` in the file override
the DSN's parts. The file is re-read for every new connection so rotated credentials (a Vault
agent rewriting the file) take effect without a restart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ntpmon.common.errors import NtpmonError

CONFIG_FILES = ("database.yaml", "/vault/secrets/database.yaml")
_URL_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


class DatabaseConfigError(NtpmonError, ValueError):
    """The database configuration cannot be used; the message names the problem, never secrets."""


@dataclass(frozen=True, slots=True)
class FileOverrides:
    """What a ``database.yaml`` contributes."""

    dsn: str = ""
    user: str = ""
    password: str = ""
    dbname: str = ""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """A resolved database location plus the file to re-read credentials from."""

    url: URL
    config_file: Path | None = None
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def describe(self) -> str:
        """Where the database is, for messages: host and port or file, never the password."""
        if self.is_sqlite:
            return f"sqlite file {self.url.database}"
        port = self.url.port or 3306
        where = self.url.query.get("unix_socket") or f"{self.url.host}:{port}"
        return f"mysql at {where} (database {self.url.database or '-'})"


def _go_duration_seconds(value: str) -> float:
    match = _GO_DURATION.match(value.strip())
    if not match:
        raise DatabaseConfigError(f"invalid duration {value!r} in DSN (expected e.g. 30s)")
    number, unit = float(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def parse_go_dsn(dsn: str) -> tuple[URL, dict[str, Any]]:
    """Parse a go-sql-driver/mysql DSN into a PyMySQL URL plus connect arguments."""
    head, slash, tail = dsn.rpartition("/")
    if not slash:
        raise DatabaseConfigError("invalid DSN: missing '/' before the database name")
    dbname, _, query = tail.partition("?")
    creds, at, target = head.rpartition("@")
    if not at:
        creds, target = "", head
    user, _, password = creds.partition(":")
    host, port, socket = "127.0.0.1", 3306, None
    if target:
        match = re.fullmatch(r"(\w+)\((.*)\)", target)
        if not match:
            raise DatabaseConfigError(f"invalid DSN address {target!r} (expected tcp(host:port))")
        protocol, address = match.groups()
        if protocol == "unix":
            socket = address
        elif protocol == "tcp":
            host, port = _split_host_port(address)
        else:
            raise DatabaseConfigError(f"unsupported DSN protocol {protocol!r}")
    args: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "timeout":
            args["connect_timeout"] = max(1, int(_go_duration_seconds(value)))
        elif key == "readTimeout":
            args["read_timeout"] = _go_duration_seconds(value)
        elif key == "writeTimeout":
            args["write_timeout"] = _go_duration_seconds(value)
        elif key == "tls" and value in ("true", "skip-verify", "preferred"):
            args["ssl"] = {"check_hostname": value == "true"} if value != "preferred" else {}
    url = URL.create(
        "mysql+pymysql",
        username=user or None,
        password=password or None,
        host=None if socket else host,
        port=None if socket else port,
        database=dbname or None,
        query={"unix_socket": socket} if socket else {},
    )
    return url, args


def _split_host_port(address: str) -> tuple[str, int]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":") or "3306"
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:
        host, port = address, "3306"
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise DatabaseConfigError(f"invalid port {port!r} in DSN") from None


def parse_dsn(dsn: str) -> tuple[URL, dict[str, Any]]:
    """Either form of DSN: ``scheme://...`` is a SQLAlchemy URL, anything else a Go DSN."""
    dsn = dsn.strip()
    if not _URL_FORM.match(dsn):
        return parse_go_dsn(dsn)
    try:
        url = make_url(dsn)
    except ArgumentError as exc:
        raise DatabaseConfigError(f"invalid database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        if url.drivername.partition("+")[2] not in ("pymysql", ""):
            raise DatabaseConfigError(f"unsupported MySQL driver {url.drivername!r}; use pymysql")
        url = url.set(drivername=f"{backend}+pymysql")
    elif backend != "sqlite":
        raise DatabaseConfigError(f"unsupported database {backend!r} (mysql, mariadb or sqlite)")
    return url, {}


def read_config_file(path: Path) -> FileOverrides:
    """Read a ``database.yaml``; every problem is a :class:`DatabaseConfigError`."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DatabaseConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DatabaseConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("mysql"), dict):
        raise DatabaseConfigError(f"{path} has no 'mysql' section")
    section = doc["mysql"]
    values = {k: section.get(k) or "" for k in ("dsn", "user", "pass", "dbname")}
    bad = [k for k, v in values.items() if not isinstance(v, str)]
    if bad:
        raise DatabaseConfigError(f"{path}: mysql.{bad[0]} must be a string")
    return FileOverrides(values["dsn"], values["user"], values["pass"], values["dbname"])


def find_config_file(candidates: Sequence[str | Path] = CONFIG_FILES) -> Path | None:
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def apply_overrides(url: URL, overrides: FileOverrides) -> URL:
    changes: dict[str, Any] = {}
    if overrides.user:
        changes["username"] = overrides.user
    if overrides.password:
        changes["password"] = overrides.password
    if overrides.dbname:
        changes["database"] = overrides.dbname
    return url.set(**changes) if changes else url


def resolve_settings(
    dsn: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_files: Sequence[str | Path] | None = None,
    default_sqlite: Path | None = None,
) -> DatabaseSettings:
    """Decide which database to use; ``default_sqlite`` is the embedded fallback, if any."""
    environ = os.environ if environ is None else environ
    candidates = config_files
    if candidates is None:
        explicit = environ.get("DATABASE_CONFIG_FILE")
        candidates = (explicit,) if explicit else CONFIG_FILES
    config_file = find_config_file(candidates)
    overrides = read_config_file(config_file) if config_file else FileOverrides()
    chosen = overrides.dsn or dsn or environ.get("DATABASE_DSN", "")
    if not chosen:
        if default_sqlite is None:
            raise DatabaseConfigError(
                "dsn config in database.yaml or DATABASE_DSN environment variable required"
            )
        chosen = f"sqlite:///{default_sqlite}"
    url, connect_args = parse_dsn(chosen)
    if url.get_backend_name() != "sqlite":
        url = apply_overrides(url, overrides)
    return DatabaseSettings(url=url, config_file=config_file, connect_args=connect_args)
