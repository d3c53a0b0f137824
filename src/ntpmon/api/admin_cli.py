"""``monitor-api admin``: accounts, servers, monitors, registrations and system settings.

Every listing prints a table, or JSON with ``--json``; every change prints one line saying what
changed. Errors are :class:`NtpmonError` so the user sees one line, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Connection, Engine, select

from ntpmon.common.clock import SystemClock
from ntpmon.common.dbcli import DsnOption
from ntpmon.common.environments import parse_env
from ntpmon.common.errors import NtpmonError
from ntpmon.db import admin
from ntpmon.db import registrations as reg
from ntpmon.db.common import get_system_setting
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import accounts, monitors

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


class AdminError(NtpmonError):
    """An admin command that cannot do what was asked."""


def _engine(dsn: str | None) -> Engine:
    from ntpmon.db.engine import open_database

    return open_database(dsn, wait=5.0)


def _in_tx(dsn: str | None, fn: Callable[[Connection], T]) -> T:
    engine = _engine(dsn)
    try:
        with engine.begin() as conn:
            return fn(conn)
    finally:
        engine.dispose()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> str:
    """A fixed-width table (or JSON list) of ``rows`` restricted to ``columns``."""
    picked = [{c: _plain(r.get(c)) for c in columns} for r in rows]
    if as_json:
        return json.dumps(picked, indent=2)
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in picked]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(i) if dataclasses.is_dataclass(i) else dict(i) for i in items]


def _now() -> datetime:
    return SystemClock().now()


def _monitor_ids(conn: Connection, ref: str) -> list[int]:
    """A monitor id, or every current row of a tls_name."""
    if ref.isdigit():
        query = select(monitors.c.id).where(monitors.c.id == int(ref))
    else:
        query = select(monitors.c.id).where(
            monitors.c.tls_name == ref, monitors.c.deleted_on.is_(None)
        )
    ids = [int(i) for i in conn.execute(query.order_by(monitors.c.id)).scalars()]
    if not ids:
        raise AdminError(f"no monitor {ref!r}")
    return ids


def build_admin_app() -> typer.Typer:
    app = typer.Typer(help="Operator commands.", no_args_is_help=True)
    app.add_typer(_accounts_app(), name="accounts")
    app.add_typer(_servers_app(), name="servers")
    app.add_typer(_monitors_app(), name="monitors")
    app.add_typer(_registrations_app(), name="registrations")
    app.add_typer(_settings_app(), name="settings")
    return app


def _accounts_app() -> typer.Typer:
    accounts_app = typer.Typer(help="Accounts.", no_args_is_help=True)

    @accounts_app.command("add")
    def accounts_add(
        name: str,
        id_token: Annotated[str | None, typer.Option(help="public account token")] = None,
        dsn: DsnOption = None,
    ) -> None:
        """Create an account."""
        new_id = _in_tx(
            dsn, lambda c: admin.create_account(c, name=name, now=_now(), id_token=id_token)
        )
        typer.echo(f"account {new_id} created")

    @accounts_app.command("list")
    def accounts_list(as_json: JsonOption = False, dsn: DsnOption = None) -> None:
        """List accounts."""
        rows = _in_tx(
            dsn,
            lambda c: [
                dict(r._mapping) for r in c.execute(select(accounts).order_by(accounts.c.id))
            ],
        )
        typer.echo(render(rows, ["id", "name", "id_token", "created_on"], as_json))

    return accounts_app


def _servers_app() -> typer.Typer:
    servers_app = typer.Typer(help="NTP servers under test.", no_args_is_help=True)

    @servers_app.command("add")
    def servers_add(
        ip: str,
        hostname: Annotated[str | None, typer.Option()] = None,
        account: Annotated[int | None, typer.Option(help="account id")] = None,
        dsn: DsnOption = None,
    ) -> None:
        """Add a server; every live monitor of its IP version becomes a candidate for it."""

        def add(conn: Connection) -> int:
            try:
                server_id = admin.create_server(
                    conn, ip=ip, now=_now(), account_id=account, hostname=hostname
                )
            except ValueError:
                raise AdminError(f"{ip!r} is not an IP address") from None
            admin.assign_server_to_monitors(conn, server_id=server_id, now=_now())
            return server_id

        typer.echo(f"server {_in_tx(dsn, add)} added")

    @servers_app.command("list")
    def servers_list(as_json: JsonOption = False, dsn: DsnOption = None) -> None:
        """List servers."""
        rows = _rows(_in_tx(dsn, admin.list_servers))
        cols = ["id", "ip", "ip_version", "hostname", "stratum", "score_raw", "deletion_on"]
        typer.echo(render(rows, cols, as_json))

    @servers_app.command("remove")
    def servers_remove(server_id: int, dsn: DsnOption = None) -> None:
        """Stop testing a server from today (its history is kept)."""
        changed = _in_tx(dsn, lambda c: admin.schedule_server_deletion(c, id=server_id, on=_now()))
        if not changed:
            raise AdminError(f"no server {server_id}")
        typer.echo(f"server {server_id} removed")

    return servers_app


def _set_status(ref: str, status: MonitorStatus, dsn: str | None) -> None:
    def change(conn: Connection) -> list[int]:
        ids = _monitor_ids(conn, ref)
        for monitor_id in ids:
            admin.set_monitor_status(conn, id=monitor_id, status=status, now=_now())
            if status.is_live:
                admin.assign_monitor_to_servers(conn, monitor_id=monitor_id, now=_now())
        if status is MonitorStatus.DELETED:
            names = _tls_names(conn, ids)
            for name in names:
                reg.revoke_api_keys(conn, tls_name=name, now=_now())
        return ids

    ids = _in_tx(dsn, change)
    typer.echo(f"monitor {', '.join(map(str, ids))} {status}")


def _tls_names(conn: Connection, ids: list[int]) -> set[str]:
    query = select(monitors.c.tls_name).where(monitors.c.id.in_(ids))
    return {n for n in conn.execute(query).scalars() if n}


def _monitors_app() -> typer.Typer:
    monitors_app = typer.Typer(help="Monitors (agents).", no_args_is_help=True)

    @monitors_app.command("list")
    def monitors_list(
        as_json: JsonOption = False,
        all_: Annotated[bool, typer.Option("--all", help="include deleted")] = False,
        dsn: DsnOption = None,
    ) -> None:
        """List monitors."""
        rows = _rows(_in_tx(dsn, lambda c: admin.list_monitors(c, include_deleted=all_)))
        cols = ["id", "tls_name", "ip", "status", "account_id", "client_version", "last_seen"]
        typer.echo(render(rows, cols, as_json))

    @monitors_app.command("approve")
    def monitors_approve(monitor: str, dsn: DsnOption = None) -> None:
        """Make a monitor (id or tls_name) live as ``testing``."""
        _set_status(monitor, MonitorStatus.TESTING, dsn)

    @monitors_app.command("activate")
    def monitors_activate(monitor: str, dsn: DsnOption = None) -> None:
        """Make a monitor ``active``."""
        _set_status(monitor, MonitorStatus.ACTIVE, dsn)

    @monitors_app.command("pause")
    def monitors_pause(monitor: str, dsn: DsnOption = None) -> None:
        """Pause a monitor: its RPCs are refused until resumed."""
        _set_status(monitor, MonitorStatus.PAUSED, dsn)

    @monitors_app.command("resume")
    def monitors_resume(monitor: str, dsn: DsnOption = None) -> None:
        """Resume a paused monitor as ``testing``."""
        _set_status(monitor, MonitorStatus.TESTING, dsn)

    @monitors_app.command("delete")
    def monitors_delete(monitor: str, dsn: DsnOption = None) -> None:
        """Delete a monitor and revoke its API keys."""
        _set_status(monitor, MonitorStatus.DELETED, dsn)

    return monitors_app


def _registrations_app() -> typer.Typer:
    regs_app = typer.Typer(help="Agent registrations.", no_args_is_help=True)

    @regs_app.command("list")
    def regs_list(
        as_json: JsonOption = False,
        all_: Annotated[bool, typer.Option("--all", help="include approved/completed")] = False,
        dsn: DsnOption = None,
    ) -> None:
        """List registrations waiting for approval."""
        rows = _rows(_in_tx(dsn, lambda c: reg.list_registrations(c, include_done=all_)))
        cols = ["registration_id", "hostname", "ipv4", "ipv6", "status", "tls_name", "created_on"]
        typer.echo(render(rows, cols, as_json))

    @regs_app.command("approve")
    def regs_approve(
        registration_id: str,
        account: Annotated[str | None, typer.Option(help="account id or token")] = None,
        deployment_mode: Annotated[str, typer.Option(envvar="DEPLOYMENT_MODE")] = "devel",
        dsn: DsnOption = None,
    ) -> None:
        """Create the monitor(s) of a registration; the agent then receives its API key."""
        from ntpmon.api.registration import approve_registration

        env = parse_env(deployment_mode)
        approval = _in_tx(
            dsn,
            lambda c: approve_registration(
                c, registration_id=registration_id, env=env, now=_now(), account=account
            ),
        )
        ids = ", ".join(map(str, approval.monitor_ids))
        typer.echo(f"registration approved: monitor {approval.tls_name} (ids {ids}), testing")

    return regs_app


def _settings_app() -> typer.Typer:
    settings_app = typer.Typer(help="System settings.", no_args_is_help=True)

    @settings_app.command("get")
    def settings_get(key: str, dsn: DsnOption = None) -> None:
        """Print a system setting (JSON)."""
        value = _in_tx(dsn, lambda c: get_system_setting(c, key=key))
        if value is None:
            raise AdminError(f"no setting {key!r}")
        typer.echo(value)

    @settings_app.command("set")
    def settings_set(key: str, value: str, dsn: DsnOption = None) -> None:
        """Store a system setting; VALUE must be JSON (e.g. '{"batch_size": 20}')."""
        try:
            parsed = json.loads(value)
        except ValueError:
            raise AdminError("VALUE must be JSON") from None
        _in_tx(dsn, lambda c: admin.set_system_setting(c, key=key, value=parsed, now=_now()))
        typer.echo(f"setting {key} stored")

    return settings_app
