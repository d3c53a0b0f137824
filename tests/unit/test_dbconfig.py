"""Database location: Go DSNs, URLs, database.yaml precedence (spec/database.md §7.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntpmon.db.config import (
    DatabaseConfigError,
    parse_dsn,
    parse_go_dsn,
    read_config_file,
    resolve_settings,
)


@pytest.mark.parametrize(
    ("dsn", "user", "password", "host", "port", "database", "socket"),
    [
        (
            "monitor:test123@tcp(localhost:3308)/monitor_test?parseTime=true&multiStatements=true",
            "monitor",
            "test123",
            "localhost",
            3308,
            "monitor_test",
            None,
        ),
        (
            "tcp(ntp-db-mysql)/betadb?charset=utf8&parseTime=true",
            None,
            None,
            "ntp-db-mysql",
            3306,
            "betadb",
            None,
        ),
        ("u:p:with:colons@and@tcp(db:1)/x", "u", "p:with:colons@and", "db", 1, "x", None),
        ("u@tcp([2001:db8::1]:3307)/x", "u", None, "2001:db8::1", 3307, "x", None),
        ("u@tcp([::1])/x", "u", None, "::1", 3306, "x", None),
        ("/x", None, None, "127.0.0.1", 3306, "x", None),
        (
            "root@unix(/run/mysqld/mysqld.sock)/ntp",
            "root",
            None,
            None,
            None,
            "ntp",
            "/run/mysqld/mysqld.sock",
        ),
        ("a/b@tcp(h:5)/db", "a/b", None, "h", 5, "db", None),
    ],
)
def test_go_dsn(
    dsn: str,
    user: str | None,
    password: str | None,
    host: str | None,
    port: int | None,
    database: str,
    socket: str | None,
) -> None:
    url, _ = parse_go_dsn(dsn)
    assert url.drivername == "mysql+pymysql"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        user,
        password,
        host,
        port,
        database,
    )
    assert url.query.get("unix_socket") == socket


def test_go_dsn_params() -> None:
    _, args = parse_go_dsn("u@tcp(h)/d?timeout=5s&readTimeout=30s&writeTimeout=1m&tls=true")
    assert args == {
        "connect_timeout": 5,
        "read_timeout": 30.0,
        "write_timeout": 60.0,
        "ssl": {"check_hostname": True},
    }


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("nodatabase", "missing '/'"),
        ("u@udp(h)/d", "unsupported DSN protocol"),
        ("u@h:3306/d", "invalid DSN address"),
        ("u@tcp(h:port)/d", "invalid port"),
        ("u@tcp(h)/d?timeout=soon", "invalid duration"),
        ("postgresql://u@h/d", "unsupported database"),
        ("mysql+mysqldb://u@h/d", "unsupported MySQL driver"),
    ],
)
def test_bad_dsn(dsn: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError, match=message):
        parse_dsn(dsn)


@pytest.mark.parametrize(
    ("dsn", "driver"),
    [
        ("mysql://u@h/d", "mysql+pymysql"),
        ("mysql+pymysql://u@h/d", "mysql+pymysql"),
        ("mariadb://u@h/d", "mariadb+pymysql"),
        ("sqlite:////tmp/x.sqlite", "sqlite"),
    ],
)
def test_url_dsn(dsn: str, driver: str) -> None:
    assert parse_dsn(dsn)[0].drivername == driver


def write_yaml(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_file_dsn_wins_and_overrides(tmp_path: Path) -> None:
    cfg = write_yaml(
        tmp_path / "database.yaml",
        'mysql:\n  dsn: "a:b@tcp(filehost:3310)/filedb"\n  user: u2\n  pass: p2\n  dbname: db2\n',
    )
    settings = resolve_settings("mysql+pymysql://x:y@envhost/envdb", environ={}, config_files=[cfg])
    url = settings.url
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "filehost",
        3310,
        "u2",
        "p2",
        "db2",
    )
    assert settings.config_file == cfg


def test_file_without_dsn_overrides_env_dsn(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "database.yaml", "mysql:\n  user: rotated\n  pass: s3cret\n")
    settings = resolve_settings(
        None, environ={"DATABASE_DSN": "mysql://old:old@h:1/d"}, config_files=[cfg]
    )
    assert (settings.url.username, settings.url.password, settings.url.host) == (
        "rotated",
        "s3cret",
        "h",
    )
    assert "s3cret" not in settings.describe()
    assert settings.describe() == "mysql at h:1 (database d)"


def test_first_existing_file_wins(tmp_path: Path) -> None:
    second = write_yaml(tmp_path / "b.yaml", "mysql:\n  dsn: 'tcp(second)/d'\n")
    settings = resolve_settings(None, environ={}, config_files=[tmp_path / "missing.yaml", second])
    assert settings.url.host == "second"


def test_nothing_configured(tmp_path: Path) -> None:
    with pytest.raises(DatabaseConfigError, match="DATABASE_DSN environment variable required"):
        resolve_settings(None, environ={}, config_files=[tmp_path / "none.yaml"])


def test_embedded_default(tmp_path: Path) -> None:
    settings = resolve_settings(
        None, environ={}, config_files=[], default_sqlite=tmp_path / "x.sqlite"
    )
    assert settings.is_sqlite
    assert settings.describe() == f"sqlite file {tmp_path / 'x.sqlite'}"


def test_database_config_file_env(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "elsewhere.yaml", "mysql:\n  dsn: 'tcp(named)/d'\n")
    settings = resolve_settings(None, environ={"DATABASE_CONFIG_FILE": str(cfg)})
    assert settings.url.host == "named"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("just text", "no 'mysql' section"),
        ("mysql: [1, 2]", "no 'mysql' section"),
        ("mysql:\n  dsn: [x]\n", "mysql.dsn must be a string"),
        ("mysql: {unclosed", "not valid YAML"),
    ],
)
def test_bad_config_file(tmp_path: Path, body: str, message: str) -> None:
    cfg = write_yaml(tmp_path / "database.yaml", body)
    with pytest.raises(DatabaseConfigError, match=message):
        read_config_file(cfg)
