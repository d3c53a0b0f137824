"""Agent registration and approval (contract §3): names, API keys and the approval step.

Pure helpers (slug, names, key hashing) plus :func:`approve_registration`, which turns an
approved registration into monitor rows — one per recorded address family — in one transaction.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from ntpmon.common.environments import MONITOR_NAME_SUFFIX, DeployEnv
from ntpmon.common.errors import NtpmonError
from ntpmon.db import admin
from ntpmon.db import registrations as reg
from ntpmon.db.models import MonitorStatus
from ntpmon.db.tables import accounts

SUFFIX_CHARS = string.ascii_lowercase + string.digits
KEY_PREFIX = "ntpmon_"


class RegistrationError(NtpmonError):
    """A registration that cannot be approved as asked."""


@dataclass(frozen=True, slots=True)
class Approval:
    tls_name: str
    monitor_ids: list[int]


def hostname_slug(hostname: str) -> str:
    """A DNS label from a host name: first label, lower-case, ``[a-z0-9-]``, at most 20 chars."""
    first = hostname.strip().lower().split(".", 1)[0]
    slug = re.sub(r"[^a-z0-9-]+", "-", first).strip("-")[:20].strip("-")
    return slug or "monitor"


def new_tls_name(hostname: str, env: DeployEnv) -> str:
    suffix = "".join(secrets.choice(SUFFIX_CHARS) for _ in range(6))
    return f"{hostname_slug(hostname)}-{suffix}.{env}{MONITOR_NAME_SUFFIX}"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def address_family(address: str) -> tuple[str, str]:
    """``(v4|v6, canonical text)`` of a peer address; IPv4-mapped IPv6 counts as IPv4."""
    addr = ipaddress.ip_address(address)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return ("v4" if addr.version == 4 else "v6"), str(addr)


def usable_monitor_address(address: str, env: DeployEnv) -> bool:
    """Loopback, private and link-local addresses are accepted only in ``devel``."""
    if env is DeployEnv.DEVEL:
        return True
    addr = ipaddress.ip_address(address)
    return addr.is_global


def _resolve_account(conn: Connection, ref: str | None) -> int | None:
    if not ref:
        return None
    query = select(accounts.c.id).where(
        accounts.c.id == int(ref) if ref.isdigit() else accounts.c.id_token == ref
    )
    found = conn.execute(query).scalar()
    if found is None:
        raise RegistrationError(f"no account {ref!r}")
    return int(found)


def approve_registration(
    conn: Connection,
    *,
    registration_id: str,
    env: DeployEnv,
    now: datetime,
    account: str | None = None,
) -> Approval:
    """Create the monitor rows (status ``testing``, candidate for every server of their family).

    The registration is read with a row lock, as the transaction's first statement: an agent
    request that records another address must either commit before (and be approved with
    the rest) or wait until this approval commits (and then changes nothing but
    ``last_seen``). A plain read could be older than an address recorded meanwhile, which
    would then be marked approved without a monitor.
    """
    found = reg.get_registration(conn, registration_id=registration_id.upper(), for_update=True)
    if found is None:
        raise RegistrationError(f"no registration {registration_id!r}")
    if found.status != "pending":
        raise RegistrationError(f"registration {found.registration_id} is already {found.status}")
    addresses = [ip for ip in (found.ipv4, found.ipv6) if ip]
    if not addresses:
        raise RegistrationError("registration has no address")
    account_id = _resolve_account(conn, account or found.account_ref)
    tls_name = new_tls_name(found.hostname, env)
    ids = []
    try:
        for ip in addresses:
            monitor_id = admin.create_monitor(
                conn,
                tls_name=tls_name,
                ip=ip,
                now=now,
                account_id=account_id,
                status=MonitorStatus.TESTING,
                hostname=found.hostname,
            )
            admin.assign_monitor_to_servers(conn, monitor_id=monitor_id, now=now)
            ids.append(monitor_id)
    except IntegrityError:
        raise RegistrationError(
            f"a current monitor already uses one of {', '.join(addresses)}"
        ) from None
    reg.mark_registration_approved(
        conn, id=found.id, tls_name=tls_name, account_id=account_id, now=now
    )
    return Approval(tls_name, ids)
