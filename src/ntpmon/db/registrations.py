"""Agent registrations and API keys: ntpmon's own tables for what the NTP Pool website did.

API keys are stored only as SHA-256 hex digests; keys are 256-bit random values, so a fast
hash is enough (there is nothing to brute-force).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, insert, select, update

from ntpmon.common.clock import db_seconds
from ntpmon.db.models import from_row
from ntpmon.db.tables import api_keys, registrations


@dataclass(frozen=True, slots=True)
class Registration:
    id: int
    registration_id: str
    hostname: str
    account_ref: str | None
    ipv4: str | None
    ipv6: str | None
    status: str
    account_id: int | None
    tls_name: str | None
    created_on: datetime
    last_seen: datetime
    approved_on: datetime | None
    completed_on: datetime | None


def get_registration(
    conn: Connection, *, registration_id: str, for_update: bool = False
) -> Registration | None:
    """One registration; ``for_update`` reads the committed row and locks it until COMMIT
    (a plain read may come from an older snapshot of the transaction)."""
    query = select(registrations).where(registrations.c.registration_id == registration_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return from_row(Registration, row) if row else None


def record_registration_request(
    conn: Connection,
    *,
    registration_id: str,
    family: str,
    address: str,
    hostname: str,
    account_ref: str,
    now: datetime,
) -> Registration:
    """Create or update a pending registration with the address seen in one family.

    Addresses and form values only change while the registration is pending, so an
    approved registration keeps exactly what the operator saw.
    """
    existing = get_registration(conn, registration_id=registration_id)
    column = "ipv4" if family == "v4" else "ipv6"
    if existing is None:
        conn.execute(
            insert(registrations).values(
                registration_id=registration_id,
                hostname=hostname[:255],
                account_ref=account_ref[:255] or None,
                status="pending",
                created_on=db_seconds(now),
                last_seen=db_seconds(now),
                **{column: address},
            )
        )
    else:
        # "Only while pending" is decided by the UPDATE on the row as it is now, not by
        # ``existing``: that plain read comes from this transaction's snapshot, and an
        # approval may have committed since (the form values would then overwrite what
        # the operator approved).
        pending = registrations.c.status == "pending"
        changes = {column: address}
        if hostname:
            changes["hostname"] = hostname[:255]
        if account_ref:
            changes["account_ref"] = account_ref[:255]
        values: dict[str, object] = {"last_seen": db_seconds(now)}
        for name, value in changes.items():
            values[name] = case((pending, value), else_=registrations.c[name])
        conn.execute(
            update(registrations).where(registrations.c.id == existing.id).values(**values)
        )
    found = get_registration(conn, registration_id=registration_id)
    assert found is not None
    return found


def list_registrations(conn: Connection, *, include_done: bool = False) -> list[Registration]:
    query = select(registrations).order_by(registrations.c.id)
    if not include_done:
        query = query.where(registrations.c.status == "pending")
    return [from_row(Registration, r) for r in conn.execute(query)]


def mark_registration_approved(
    conn: Connection, *, id: int, tls_name: str, account_id: int | None, now: datetime
) -> bool:
    """pending → approved (only once)."""
    return (
        conn.execute(
            update(registrations)
            .where(registrations.c.id == id, registrations.c.status == "pending")
            .values(
                status="approved",
                tls_name=tls_name,
                account_id=account_id,
                approved_on=db_seconds(now),
            )
        ).rowcount
        == 1
    )


def mark_registration_completed(conn: Connection, *, id: int, now: datetime) -> bool:
    """approved → completed; True for exactly one caller, who then hands out the API key."""
    return (
        conn.execute(
            update(registrations)
            .where(registrations.c.id == id, registrations.c.status == "approved")
            .values(status="completed", completed_on=db_seconds(now))
        ).rowcount
        == 1
    )


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    key_hash: str
    tls_name: str
    account_id: int | None
    created_on: datetime
    last_used_on: datetime | None
    revoked_on: datetime | None


def insert_api_key(
    conn: Connection, *, key_hash: str, tls_name: str, account_id: int | None, now: datetime
) -> int:
    result = conn.execute(
        insert(api_keys).values(
            key_hash=key_hash, tls_name=tls_name, account_id=account_id, created_on=db_seconds(now)
        )
    )
    return int(result.inserted_primary_key[0])


def find_api_key(conn: Connection, *, key_hash: str) -> ApiKey | None:
    """The live key with this hash (revoked keys are not found)."""
    row = conn.execute(
        select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_on.is_(None))
    ).first()
    return from_row(ApiKey, row) if row else None


def touch_api_key(conn: Connection, *, id: int, now: datetime) -> int:
    return conn.execute(
        update(api_keys).where(api_keys.c.id == id).values(last_used_on=db_seconds(now))
    ).rowcount


def revoke_api_keys(conn: Connection, *, tls_name: str, now: datetime) -> int:
    return conn.execute(
        update(api_keys)
        .where(api_keys.c.tls_name == tls_name, api_keys.c.revoked_on.is_(None))
        .values(revoked_on=db_seconds(now))
    ).rowcount
