"""Vault (hvac) behind the same interfaces as the key file and the embedded CA.

``monitor-api server --ticket-keys vault`` keeps the ticket secrets in KV v2 at
``kv/ntppool/<env>/monitor-tokens`` as upstream does (spec/api.md §7.3); ``--ca vault`` issues
certificates from the PKI role ``pki_servers/issue/monitors-<env>``. The client is configured
as upstream's: ``VAULT_ADDR``, the token from ``/vault/secrets/token`` (a Vault agent sidecar
keeps it fresh) else ``VAULT_TOKEN``, ``VAULT_CACERT``; or AppRole (``VAULT_ROLE_ID``,
``VAULT_SECRET_ID``), which logs in again whenever Vault refuses the token.

Vault being unusable at start is fatal with one line (sealed, unreachable, refused). Once
running, the keys read at start stay in use while Vault is away; only rotation, a newer
version another replica wrote and the certificates of the management API need it. Tested
against the stand-in in :mod:`ntpmon.testing.vaultserver`, not against a real Vault server.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from ntpmon.api.ca import CAError, IssuedCertificate
from ntpmon.api.ticketkeys import ROTATE_AFTER, TicketKeyError
from ntpmon.common.clock import Clock
from ntpmon.common.errors import NtpmonError

log = logging.getLogger(__name__)

DEFAULT_ADDR = "https://vault.ntppool.org"
TOKEN_FILE = Path("/vault/secrets/token")
KV_MOUNT = "kv"
PKI_MOUNT = "pki_servers"
APPROLE_MOUNT = "approle"
TIMEOUT = 10.0
"""Seconds per Vault request: a Vault that hangs must not hold an RPC thread for long."""
REFRESH_EVERY = 60.0
"""Seconds between re-reads of the newest ticket key, so a version another replica (or the
main process of ``--processes``) rotated to verifies here within a minute."""

T = TypeVar("T")


class VaultError(NtpmonError):
    """Vault cannot be used: sealed, unreachable, refusing the token or answering nonsense."""


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """How to reach and authenticate to Vault (upstream's environment variables)."""

    addr: str = DEFAULT_ADDR
    token: str = ""
    token_file: Path | None = None  # re-read when Vault refuses the token (agent sidecar)
    role_id: str = ""
    secret_id: str = ""
    cacert: str = ""

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, token_file: Path = TOKEN_FILE
    ) -> VaultSettings:
        """``VAULT_ADDR``, ``token_file`` else ``VAULT_TOKEN``, AppRole, ``VAULT_CACERT``."""
        env = os.environ if environ is None else environ
        token = env.get("VAULT_TOKEN", "")
        has_file = token_file.is_file()
        if has_file:
            token = _read_token(token_file) or token
        settings = cls(
            addr=env.get("VAULT_ADDR") or DEFAULT_ADDR,
            token=token,
            token_file=token_file if has_file else None,
            role_id=env.get("VAULT_ROLE_ID", ""),
            secret_id=env.get("VAULT_SECRET_ID", ""),
            cacert=env.get("VAULT_CACERT", ""),
        )
        if not settings.token and not (settings.role_id and settings.secret_id):
            raise VaultError(
                f"Vault needs a token (VAULT_TOKEN or {token_file}) or AppRole credentials "
                "(VAULT_ROLE_ID and VAULT_SECRET_ID)"
            )
        return settings


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _first_line(exc: BaseException) -> str:
    """Vault's own error messages (hvac keeps them in ``errors``), else the first line."""
    errors = getattr(exc, "errors", None)
    if errors:
        return "; ".join(str(e) for e in errors)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class VaultSession:
    """One hvac client; a refused token is replaced (AppRole login, or the token file) once.

    Every call goes through :meth:`call`, which turns hvac's and requests' exceptions into a
    one-line :class:`VaultError` that says what was being done and what Vault said.
    """

    def __init__(self, settings: VaultSettings) -> None:
        try:
            import hvac
        except ImportError:
            raise VaultError("Vault support needs hvac: pip install 'ntpmon[vault]'") from None
        self.settings = settings
        self._client = hvac.Client(
            url=settings.addr,
            token=settings.token or None,
            verify=settings.cacert or True,
            timeout=TIMEOUT,
        )
        self._lock = threading.Lock()
        self.logins = 0
        if settings.role_id:
            self.call("logging in with AppRole", lambda _: self._login())

    def _login(self) -> None:
        self._client.auth.approle.login(
            role_id=self.settings.role_id,
            secret_id=self.settings.secret_id,
            mount_point=APPROLE_MOUNT,
        )
        self.logins += 1

    def _renew(self, refused: str) -> bool:
        """Get a new token after ``refused`` was refused; False when there is no way to."""
        with self._lock:
            if self._client.token != refused:
                return True  # another thread already renewed it
            if self.settings.role_id:
                self._login()
                log.info("vault token renewed by AppRole login")
                return True
            if self.settings.token_file is not None:
                fresh = _read_token(self.settings.token_file)
                if fresh and fresh != refused:
                    self._client.token = fresh
                    return True
        return False

    def call(self, doing: str, fn: Callable[[Any], T], *, missing_ok: bool = False) -> T | None:
        """``fn(client)``; None for a missing path when ``missing_ok``; else a VaultError."""
        import hvac.exceptions as vault_exc
        import requests

        addr = self.settings.addr
        try:
            token = self._client.token
            try:
                return fn(self._client)
            except (vault_exc.Forbidden, vault_exc.Unauthorized):
                if not self._renew(token):
                    raise
                return fn(self._client)
        except vault_exc.InvalidPath:
            if missing_ok:
                return None
            raise VaultError(f"{doing}: Vault at {addr} has no such path") from None
        except vault_exc.VaultDown:
            raise VaultError(f"{doing}: Vault at {addr} is sealed") from None
        except (vault_exc.Forbidden, vault_exc.Unauthorized) as exc:
            raise VaultError(
                f"{doing}: Vault at {addr} refused the token ({_first_line(exc)})"
            ) from None
        except vault_exc.VaultError as exc:
            raise VaultError(f"{doing}: Vault at {addr} answered: {_first_line(exc)}") from None
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise VaultError(f"{doing}: cannot reach Vault at {addr} ({reason})") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultError(f"{doing}: unexpected answer from Vault at {addr}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Version:
    version: int
    secret: bytes
    created: float  # unix seconds (``token-ts``)


class VaultKeyring:
    """Ticket secrets from KV v2; the key version is the secret's metadata version.

    At start the newest version is read (and created with CAS 0 when there is none).
    :meth:`maybe_rotate` (every two hours, by the server) writes a new version with CAS = the
    newest, so of several replicas only one rotates. Versions read once stay in memory, so a
    running server keeps signing and verifying while Vault is away.
    """

    def __init__(
        self,
        session: VaultSession,
        env: str,
        clock: Clock,
        rotate_after: timedelta = ROTATE_AFTER,
        *,
        follower: bool = False,
        refresh_every: float | None = None,
    ) -> None:
        self._session = session
        self._path = f"ntppool/{env}/monitor-tokens"
        self._clock = clock
        self._rotate_after = rotate_after
        self._refresh_every = REFRESH_EVERY if refresh_every is None else refresh_every
        self._lock = threading.Lock()
        self._cache: dict[int, bytes] = {}
        latest = self._read()
        if latest is None:
            if follower:
                raise TicketKeyError(f"no ticket keys in Vault at {KV_MOUNT}/{self._path}")
            latest = self._write(cas=0)
        self._remember(latest)
        self._newest = latest
        self._refreshed = time.monotonic()

    def _read(self, version: int | None = None) -> _Version | None:
        what = f"reading ticket keys {KV_MOUNT}/{self._path}"
        found = self._session.call(
            what,
            lambda c: c.secrets.kv.v2.read_secret_version(
                path=self._path,
                mount_point=KV_MOUNT,
                version=version,
                raise_on_deleted_version=True,
            ),
            missing_ok=True,
        )
        if found is None:
            return None
        try:
            data = found["data"]
            return _Version(
                int(data["metadata"]["version"]),
                str(data["data"]["token"]).encode(),
                float(data["data"].get("token-ts") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultError(f"{what}: unexpected answer: {exc}") from None

    def _write(self, cas: int) -> _Version:
        """Write a new version (check-and-set ``cas``) and read back the newest."""
        self._session.call(
            f"writing ticket keys {KV_MOUNT}/{self._path}",
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=self._path,
                secret={
                    "token": secrets.token_urlsafe(16),
                    "token-ts": int(self._clock.now().timestamp()),
                },
                cas=cas,
                mount_point=KV_MOUNT,
            ),
        )
        latest = self._read()
        if latest is None:
            raise VaultError(f"ticket keys {KV_MOUNT}/{self._path} vanished after writing them")
        return latest

    def _remember(self, entry: _Version) -> None:
        self._cache[entry.version] = entry.secret

    def _adopt(self, latest: _Version) -> bool:
        self._remember(latest)
        changed = latest.version > self._newest.version
        if changed:
            self._newest = latest
        return changed

    def newest(self) -> tuple[int, bytes]:
        with self._lock:
            if time.monotonic() - self._refreshed >= self._refresh_every:
                self._refreshed = time.monotonic()  # one attempt per interval, even failed
                try:
                    latest = self._read()
                except VaultError as exc:
                    log.warning("keeping the ticket keys held", extra={"reason": str(exc)})
                else:
                    if latest is not None:
                        self._adopt(latest)
            return self._newest.version, self._newest.secret

    def secret(self, version: int) -> bytes | None:
        with self._lock:
            known = self._cache.get(version)
        if known is not None:
            return known
        try:
            found = self._read(version)
        except VaultError as exc:  # an unknown or destroyed version is just an invalid ticket
            log.warning("ticket key version unavailable", extra={"reason": str(exc)})
            return None
        if found is None or found.version != version:
            return None
        with self._lock:
            self._remember(found)
        return found.secret

    def maybe_rotate(self) -> bool:
        """Write a new version when the newest is older than ``rotate_after``; True when a new
        version became the newest (written here or by another replica)."""
        try:
            latest = self._read()
            if latest is None:
                raise TicketKeyError(f"ticket keys {KV_MOUNT}/{self._path} are gone from Vault")
            age = self._clock.now().timestamp() - latest.created
            if age > self._rotate_after.total_seconds():
                try:
                    latest = self._write(cas=latest.version)
                except VaultError as exc:  # another replica rotated first (CAS)
                    log.info("ticket key not rotated here", extra={"reason": str(exc)})
                    latest = self._read() or latest
        except VaultError as exc:
            raise TicketKeyError(str(exc)) from None
        with self._lock:
            self._refreshed = time.monotonic()
            return self._adopt(latest)


class VaultPKI:
    """Certificates from a Vault PKI role (``pki_servers/issue/monitors-<env>``).

    The CA certificate is read once at start (agents and the RPC listener's client
    verification need it while Vault is away); issuing needs Vault, and fails with
    :class:`~ntpmon.api.ca.CAError` when it is unusable.
    """

    def __init__(self, session: VaultSession, env: str, mount_point: str = PKI_MOUNT) -> None:
        self._session = session
        self._role = f"monitors-{env}"
        self._mount = mount_point
        root = session.call(
            f"reading the CA certificate of {mount_point}",
            lambda c: c.secrets.pki.read_ca_certificate(mount_point=mount_point),
        )
        if not root or "BEGIN CERTIFICATE" not in root:
            raise VaultError(f"Vault PKI {mount_point} has no CA certificate")
        self._root = root.strip() + "\n"

    def _issue(self, common_name: str, names: list[str], lifetime: timedelta) -> IssuedCertificate:
        ips, dns = [], []
        for name in names:
            try:
                ips.append(str(ipaddress.ip_address(name)))
            except ValueError:
                dns.append(name)
        params = {"alt_names": ",".join(dns), "ttl": f"{int(lifetime.total_seconds())}s"}
        if ips:
            params["ip_sans"] = ",".join(ips)
        try:
            found = self._session.call(
                f"issuing a certificate for {common_name} from {self._mount}/issue/{self._role}",
                lambda c: c.secrets.pki.generate_certificate(
                    name=self._role,
                    common_name=common_name,
                    extra_params=params,
                    mount_point=self._mount,
                ),
            )
            assert found is not None
            data = found["data"]
            chain = data.get("ca_chain") or [data["issuing_ca"]]
            cert_pem = "\n".join(p.strip() for p in [data["certificate"], *chain]) + "\n"
            return IssuedCertificate(cert_pem, data["private_key"].strip() + "\n")
        except VaultError as exc:
            raise CAError(str(exc)) from None
        except (KeyError, TypeError) as exc:
            raise CAError(f"unexpected answer from Vault PKI {self._mount}: {exc}") from None

    def root_pem(self) -> str:
        return self._root

    def issue_client(self, tls_name: str, lifetime: timedelta) -> IssuedCertificate:
        return self._issue(tls_name, [tls_name], lifetime)

    def issue_server(self, names: list[str], lifetime: timedelta) -> IssuedCertificate:
        return self._issue(names[0], names, lifetime)


def vault_keyring(
    session: VaultSession, env: str, clock: Clock, *, follower: bool = False
) -> Callable[[], VaultKeyring]:
    """What :func:`ntpmon.api.ticketkeys.keyring_for` calls when ``MONITOR_TICKET_KEYS`` is
    unset: the keys in Vault KV (only contacted then)."""
    return lambda: VaultKeyring(session, env, clock, follower=follower)
