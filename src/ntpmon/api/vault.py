"""Vault (hvac) adapters behind the same interfaces as the embedded CA and the key file.

Deliberately thin: no Vault server is reachable where ntpmon is developed, so these only map
the calls upstream makes (KV v2 ``ntppool/<env>/monitor-tokens``; PKI ``issue``) onto
:class:`~ntpmon.api.tickets.KeyStore` and :class:`~ntpmon.api.ca.CertificateAuthority`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from ntpmon.api.ca import IssuedCertificate

DEFAULT_ADDR = "https://vault.ntppool.org"
TOKEN_FILE = "/vault/secrets/token"  # noqa: S105 - a path, not a secret


def vault_client() -> Any:
    """An hvac client from ``VAULT_ADDR``, the token file or ``VAULT_TOKEN``, ``VAULT_CACERT``."""
    import hvac

    token = os.environ.get("VAULT_TOKEN", "")
    if os.path.exists(TOKEN_FILE):
        with open(TOKEN_FILE) as fh:
            token = fh.read().strip()
    return hvac.Client(
        url=os.environ.get("VAULT_ADDR") or DEFAULT_ADDR,
        token=token,
        verify=os.environ.get("VAULT_CACERT") or True,
    )


class VaultKeyring:
    """Ticket secrets from KV v2; the key version is the secret's metadata version."""

    def __init__(self, client: Any, env: str) -> None:
        self._kv = client.secrets.kv.v2
        self._path = f"ntppool/{env}/monitor-tokens"
        self._cache: dict[int, bytes] = {}
        latest = self._kv.read_secret_version(path=self._path, mount_point="kv")
        self._newest = int(latest["data"]["metadata"]["version"])
        self._cache[self._newest] = latest["data"]["data"]["token"].encode()

    def newest(self) -> tuple[int, bytes]:
        return self._newest, self._cache[self._newest]

    def secret(self, version: int) -> bytes | None:
        if version not in self._cache:
            try:
                found = self._kv.read_secret_version(
                    path=self._path, mount_point="kv", version=version
                )
            except Exception:  # an unknown or destroyed version is just an invalid ticket
                return None
            self._cache[version] = found["data"]["data"]["token"].encode()
        return self._cache[version]


class VaultPKI:
    """Certificates from a Vault PKI role (``pki_servers/issue/monitors-<env>``)."""

    def __init__(self, client: Any, env: str, mount_point: str = "pki_servers") -> None:
        self._pki = client.secrets.pki
        self._role = f"monitors-{env}"
        self._mount = mount_point

    def _issue(
        self, common_name: str, alt_names: list[str], lifetime: timedelta
    ) -> IssuedCertificate:
        data = self._pki.generate_certificate(
            name=self._role,
            common_name=common_name,
            extra_params={
                "alt_names": ",".join(alt_names),
                "ttl": f"{int(lifetime.total_seconds())}s",
            },
            mount_point=self._mount,
        )["data"]
        return IssuedCertificate(
            data["certificate"] + "\n" + data["issuing_ca"] + "\n", data["private_key"]
        )

    def root_pem(self) -> str:
        return str(self._pki.read_ca_certificate(mount_point=self._mount))

    def issue_client(self, tls_name: str, lifetime: timedelta) -> IssuedCertificate:
        return self._issue(tls_name, [tls_name], lifetime)

    def issue_server(self, names: list[str], lifetime: timedelta) -> IssuedCertificate:
        return self._issue(names[0], names, lifetime)
