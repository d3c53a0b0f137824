"""AppConfig: the agent's identity and state, kept in memory and in ``state.json`` (agent.md §5).

One lock guards the in-memory state; every change that matters to the workers (API key,
certificate presence, the management API's data) is broadcast to the registered waiters.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ntpmon.agent.config import persist
from ntpmon.agent.config.certs import (
    CertificateError,
    ClientCertificate,
    NoCertificateError,
    parse_key_pair,
)
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.config.jwt import TokenCache
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementClient
from ntpmon.agent.config.statefile import (
    IPConfig,
    MonitorData,
    State,
    data_sha,
    decode_state,
    encode_state,
)
from ntpmon.agent.daemon.scope import Scope

__all__ = ["AppConfig", "AuthorizationError", "Waiter", "data_sha"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Waiter:
    """One registration for the next config change; ``done`` is set when it fires."""

    def __init__(self, waiter_id: int, remove: Callable[[int], None]) -> None:
        self.id = waiter_id
        self.done = threading.Event()
        self._remove = remove
        self._detach: Callable[[], None] = lambda: None

    def cancel(self) -> None:
        """Stop waiting; the registry forgets this waiter."""
        self._detach()
        self._remove(self.id)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class AppConfig:
    """State of one environment in ``<state_dir>/<env>/``, backed by the management API."""

    def __init__(
        self,
        env: DeploymentEnv,
        state_dir: Path,
        *,
        management: ManagementClient | None,
        runtime_dir: str | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.env = env
        self.state_dir = state_dir
        self.env_dir = state_dir / env.value
        self.management = management
        self.runtime_dir = runtime_dir
        self._now = now
        self._lock = threading.RLock()
        self._state = State()
        self._key_refused = False
        self._cert: ClientCertificate | None = None
        self._waiters: dict[int, Waiter] = {}
        self._waiter_ids = itertools.count(1)
        self.tokens = TokenCache(self._fetch_token)

    # -- paths --------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.env_dir / persist.STATE_FILE

    @property
    def cert_path(self) -> Path:
        return self.env_dir / persist.CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.env_dir / persist.KEY_FILE

    @property
    def ca_path(self) -> Path:
        return self.env_dir / persist.CA_FILE

    # -- getters ------------------------------------------------------------------------
    def api_key(self) -> str:
        """The API key; empty after the API refused it (the file keeps it, see load())."""
        with self._lock:
            return "" if self._key_refused else self._state.api_key

    def data(self) -> MonitorData:
        with self._lock:
            return self._state.data

    def data_sha(self) -> str:
        with self._lock:
            return self._state.data_sha

    def tls_name(self) -> str:
        return self.data().tls_name

    def ip_config(self, family: int) -> IPConfig:
        return self.data().ip_config(family)

    def is_live(self, family: int) -> bool:
        return self.ip_config(family).is_live()

    def any_live(self) -> bool:
        return self.is_live(4) or self.is_live(6)

    def certificate(self) -> ClientCertificate:
        with self._lock:
            if self._cert is None:
                raise NoCertificateError()
            return self._cert

    def have_certificate(self) -> bool:
        with self._lock:
            return self._cert is not None

    def certificate_dates(self) -> tuple[datetime, datetime]:
        cert = self.certificate()
        return cert.not_before, cert.not_after

    def certificate_validity(self) -> tuple[bool, timedelta | NoCertificateError]:
        """(valid, next check) for the loaded certificate, or (False, error) without one."""
        try:
            cert = self.certificate()
        except NoCertificateError as exc:
            return False, exc
        return cert.validity(self._now())

    # -- waiters ------------------------------------------------------------------------
    def wait_for_config_change(self, scope: Scope | None = None) -> Waiter:
        """A one-shot waiter for the next notification (or the end of ``scope``)."""
        waiter = Waiter(next(self._waiter_ids), self._remove_waiter)
        with self._lock:
            self._waiters[waiter.id] = waiter
        if scope is not None:
            waiter._detach = scope.on_cancel(waiter.done.set)
        return waiter

    def _remove_waiter(self, waiter_id: int) -> None:
        with self._lock:
            self._waiters.pop(waiter_id, None)

    def waiter_count(self) -> int:
        with self._lock:
            return len(self._waiters)

    def notify_config_change(self) -> None:
        """Fire every registered waiter once and clear the registry (not sticky)."""
        with self._lock:
            waiters = list(self._waiters.values())
            self._waiters.clear()
        for waiter in waiters:
            waiter._detach()
            waiter.done.set()

    # -- persistence --------------------------------------------------------------------
    def save(self) -> None:
        """Write ``state.json`` atomically (the env directory is created 0700 if needed)."""
        with self._lock:
            persist.ensure_dir(self.env_dir)
            persist.replace_file(self.state_path, encode_state(self._state))

    def set_api_key(self, key: str) -> None:
        """Store and persist a new key; waiters fire only when the value changed."""
        with self._lock:
            changed = key != self.api_key()
            self._state = replace(self._state, api_key=key)
            self._key_refused = False
            self.save()
        if changed:
            self.tokens.clear()
            self.notify_config_change()

    def set_cached_otlp_log_level(self, level: str) -> None:
        with self._lock:
            if level == self._state.data.otlp_log_level:
                return
            data = replace(self._state.data, otlp_log_level=level)
            self._state = replace(self._state, data=data)
            self.save()

    def _load_from_disk(self) -> None:
        raw = persist.read_file(self.state_path)
        if raw is None:
            raw = persist.migrate_runtime_dir(self.env_dir, self.env.value, self.runtime_dir)
            if raw is None:
                return
        state = decode_state(raw, self._state, source=str(self.state_path))
        with self._lock:
            self._key_refused = False  # the stored key gets another chance on every load
            self._state = state

    def load_certificates(self) -> None:
        """Load cert.pem + key.pem; missing files are silent, a bad pair keeps the old one."""
        cert_pem = persist.read_file(self.cert_path)
        key_pem = persist.read_file(self.key_path)
        if cert_pem is None or key_pem is None:
            return
        try:
            cert = parse_key_pair(cert_pem, key_pem)
        except CertificateError as exc:
            log.error("could not load certificate", extra={"error": str(exc)})
            raise
        with self._lock:
            self._cert = cert

    def load(self) -> None:
        """Re-read the disk, then ask the management API; save when anything changed (§5.4).

        A read/parse error raises and leaves the file alone; an API error raises before any
        save, so a bad answer never overwrites good state.
        """
        with self._lock:
            prev_key, prev_cert = self.api_key(), self.have_certificate()
        existed = persist.file_exists(self.state_path)
        self._load_from_disk()
        persist.tighten_dir(
            self.env_dir
        )  # only once the state read well: bad input changes nothing
        with contextlib.suppress(CertificateError):
            self.load_certificates()
        local_changed = self.api_key() != prev_key or self.have_certificate() != prev_cert
        if local_changed:
            self.notify_config_change()
        api_changed = False
        if self.api_key():
            try:
                api_changed = self.load_api_app_config()
            except AuthorizationError:
                with self._lock:
                    self._key_refused = True
                raise
        if not existed or local_changed or api_changed:
            self.save()

    def _needs_certificate(self) -> bool:
        valid, _ = self.certificate_validity()
        return not valid

    def load_api_app_config(self, *, request_certificate: bool = False) -> bool:
        """Fetch the monitor's config; store a new certificate; True when ``Data`` changed."""
        if self.management is None:
            return False
        key = self.api_key()
        want_cert = request_certificate or self._needs_certificate()
        try:
            answer = self.management.get_config(
                key, request_certificate=want_cert, otlp_log_level=self.data().otlp_log_level
            )
        except AuthorizationError:
            self.tokens.clear()
            raise
        if answer.cert_pem:
            self._store_certificate(answer.cert_pem, answer.key_pem)
        if answer.ca_pem and persist.read_file(self.ca_path) != answer.ca_pem:
            persist.ensure_dir(self.env_dir)
            persist.replace_file(self.ca_path, answer.ca_pem)
        sha = data_sha(answer.data.as_json())
        with self._lock:
            changed = sha != self._state.data_sha
            self._state = replace(self._state, data=answer.data, data_sha=sha)
        if changed:
            log.info(
                "config changed",
                extra={
                    "monitor_name": answer.data.name,
                    "tls_name": answer.data.tls_name,
                    "ipv4": str(answer.data.ipv4.ip or ""),
                    "ipv4_status": answer.data.ipv4.status,
                    "ipv6": str(answer.data.ipv6.ip or ""),
                    "ipv6_status": answer.data.ipv6.status,
                },
            )
            self.notify_config_change()
        return changed

    def _store_certificate(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Write both files, then use the new pair at once [IMPROVE over upstream]."""
        persist.ensure_dir(self.env_dir)
        persist.replace_file(self.cert_path, cert_pem)
        persist.replace_file(self.key_path, key_pem)
        try:
            cert = parse_key_pair(cert_pem, key_pem)
        except CertificateError as exc:
            log.error("management API sent an unusable certificate", extra={"error": str(exc)})
            return
        with self._lock:
            had = self._cert is not None
            self._cert = cert
        log.info("stored new client certificate", extra={"not_after": cert.not_after.isoformat()})
        if not had:
            self.notify_config_change()

    # -- tokens -------------------------------------------------------------------------
    def _fetch_token(self) -> tuple[str, int]:
        if self.management is None:
            raise AuthorizationError("no management API")
        return self.management.get_token(self.api_key())

    def jwt(self) -> str:
        """The cached JWT (refreshed when due); errors propagate."""
        return self.tokens.get()

    def bearer(self) -> str:
        """JWT for the monitor API; falls back to the API key when it cannot be had [COMPAT]."""
        try:
            return self.jwt()
        except Exception as exc:
            log.debug("no JWT, using API key", extra={"error": str(exc)})
            return self.api_key()
