"""AppConfig against a real HTTPS management stand-in (agent.md §5.4, §6, §8.1, §19.2–19.5)."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.certs_helper import TestCA
from agent.fake_management import ManagementServer
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.certs import NoCertificateError
from ntpmon.agent.config.depenv import DeploymentEnv
from ntpmon.agent.config.mgmt import AuthorizationError, ManagementError
from ntpmon.agent.config.statefile import StateFormatError
from ntpmon.agent.daemon.scope import Scope

MakeConfig = Callable[..., AppConfig]
V4_TESTING = {
    "name": "mon1",
    "tls_name": "mon1-abcdef.devel.mon.ntppool.dev",
    "ipv4": {"status": "testing", "ip": "192.0.2.1"},
    "ipv6": {"status": "", "ip": ""},
}


def test_waiter_fires_on_new_key_and_not_on_same_key(make_config: MakeConfig) -> None:
    cfg = make_config()
    waiters = [cfg.wait_for_config_change() for _ in range(3)]
    cfg.set_api_key("test-api-key")
    assert all(w.wait(1) for w in waiters)
    assert cfg.api_key() == "test-api-key"
    again = cfg.wait_for_config_change()
    cfg.set_api_key("test-api-key")
    assert not again.wait(0.2)


def test_waiter_registry_counts_and_scope_cancel(make_config: MakeConfig) -> None:
    cfg = make_config()
    base = cfg.waiter_count()
    waiters = [cfg.wait_for_config_change() for _ in range(100)]
    assert cfg.waiter_count() == base + 100
    for i, w in enumerate(waiters):
        w.cancel()
        assert cfg.waiter_count() == base + 99 - i
    scope = Scope()
    scoped = cfg.wait_for_config_change(scope)
    abandoned = cfg.wait_for_config_change()
    scope.cancel()
    assert scoped.wait(1)
    assert cfg.waiter_count() >= 1 and not abandoned.done.is_set()


def test_key_persists_and_config_called_once(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.load()
    cfg.set_api_key("persistent-key")
    again = make_config()
    again.load()
    assert again.api_key() == "persistent-key"
    assert mgmt.state.count("/monitor/api/config") == 1
    assert json.loads(again.state_path.read_text())["API"]["APIKey"] == "persistent-key"


def test_concurrent_readers_and_writers(make_config: MakeConfig) -> None:
    cfg = make_config()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                cfg.set_api_key(f"key-{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                cfg.api_key()
                cfg.ip_config(4)
                cfg.wait_for_config_change().cancel()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    threads += [threading.Thread(target=reader) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert json.loads(cfg.state_path.read_text())["API"]["APIKey"] == cfg.api_key()


def test_config_load_fetches_certificate_and_ca(
    make_config: MakeConfig, mgmt: ManagementServer, test_ca: TestCA
) -> None:
    mgmt.state.config_doc = V4_TESTING
    cfg = make_config()
    cfg.set_api_key("test-key")
    waiter = cfg.wait_for_config_change()
    cfg.load()
    assert waiter.done.is_set()
    assert cfg.have_certificate() and cfg.is_live(4) and not cfg.is_live(6)
    assert cfg.ca_path.read_bytes() == test_ca.pem
    assert stat.S_IMODE(cfg.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.env_dir.stat().st_mode) == 0o700
    request = mgmt.state.requests[-1]
    assert request.query == {"request_certificate": ["true"]}
    saved = json.loads(cfg.state_path.read_text())
    assert saved["Data"]["TLSName"] == V4_TESTING["tls_name"]
    assert len(saved["DataSha"]) == 64
    # with a valid certificate loaded, the next load does not ask for another
    cfg.load()
    assert mgmt.state.requests[-1].query == {}


def test_family_mismatch_fails_and_leaves_state_unchanged(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.set_api_key("test-key")
    before = cfg.state_path.read_bytes()
    mgmt.state.config_doc = {"ipv4": {"status": "active", "ip": "2001:db8::5"}}
    with pytest.raises(ManagementError, match="not an IPv4"):
        cfg.load()
    assert cfg.state_path.read_bytes() == before


def test_unauthorized_key_clears_in_memory_only(
    make_config: MakeConfig, mgmt: ManagementServer
) -> None:
    cfg = make_config()
    cfg.set_api_key("revoked")
    mgmt.state.valid_keys = {"someone-else"}
    with pytest.raises(AuthorizationError):
        cfg.load()
    assert cfg.api_key() == ""
    assert json.loads(cfg.state_path.read_text())["API"]["APIKey"] == "revoked"


@pytest.mark.parametrize(
    "content",
    [b'{"API":{"APIKey":"test-key"\x00}', b"", b'{"API":{"APIKey":"test"', b"not json"],
)
def test_corrupt_state_file_is_an_error_and_kept(make_config: MakeConfig, content: bytes) -> None:
    cfg = make_config()
    cfg.env_dir.mkdir(parents=True)
    cfg.state_path.write_bytes(content)
    with pytest.raises(StateFormatError, match=r"state\.json"):
        cfg.load()
    assert cfg.state_path.read_bytes() == content


def test_no_state_then_set_key_creates_file(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.load()
    assert cfg.api_key() == ""
    cfg.set_api_key("new-key")
    assert json.loads(cfg.state_path.read_text())["API"]["APIKey"] == "new-key"


def test_three_envs_three_directories(make_config: MakeConfig, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    for env in DeploymentEnv:
        make_config(env, base).load()
        assert (base / env.value / "state.json").is_file()
        assert stat.S_IMODE((base / env.value).stat().st_mode) == 0o700


def test_migration_on_load_keeps_content_when_key_refused(
    make_config: MakeConfig, tmp_path: Path, mgmt: ManagementServer
) -> None:
    old = tmp_path / "runtime" / "test"
    old.mkdir(parents=True)
    content = b'{"API":{"APIKey":"migrated-key"},"Data":{"Name":"migrated.example.com"}}'
    (old / "state.json").write_bytes(content)
    mgmt.state.valid_keys = set()
    cfg = make_config(DeploymentEnv.TEST, tmp_path / "state", str(tmp_path / "runtime"))
    with pytest.raises(AuthorizationError):
        cfg.load()
    assert json.loads((tmp_path / "state" / "test" / "state.json").read_bytes()) == json.loads(
        content
    )


def test_no_certificate_errors(make_config: MakeConfig) -> None:
    cfg = make_config()
    assert not cfg.have_certificate()
    with pytest.raises(NoCertificateError, match="no certificate"):
        cfg.certificate_dates()
    valid, err = cfg.certificate_validity()
    assert valid is False and isinstance(err, NoCertificateError)


def test_mismatched_certificate_on_disk_is_not_loaded(
    make_config: MakeConfig, test_ca: TestCA
) -> None:
    cfg = make_config()
    cfg.env_dir.mkdir(parents=True)
    a, b = test_ca.issue("a.devel.mon.ntppool.dev"), test_ca.issue("b.devel.mon.ntppool.dev")
    cfg.cert_path.write_bytes(a.cert_pem)
    cfg.key_path.write_bytes(b.key_pem)
    cfg.load()
    assert not cfg.have_certificate()


def test_expired_certificate_is_renewed_on_load(
    make_config: MakeConfig, mgmt: ManagementServer, test_ca: TestCA
) -> None:
    from datetime import timedelta

    mgmt.state.config_doc = V4_TESTING
    cfg = make_config()
    cfg.env_dir.mkdir(parents=True)
    expired = test_ca.issue(
        "x.devel.mon.ntppool.dev", lifetime=timedelta(hours=1), start=-timedelta(hours=2)
    )
    cfg.cert_path.write_bytes(expired.cert_pem)
    cfg.key_path.write_bytes(expired.key_pem)
    cfg.set_api_key("k")
    cfg.load()
    assert cfg.certificate_validity()[0] is True
    assert cfg.cert_path.read_bytes() != expired.cert_pem


def test_token_cached_single_fetch(make_config: MakeConfig, mgmt: ManagementServer) -> None:
    mgmt.state.token_status = 200
    mgmt.state.token_doc = {
        "access_token": "test-access-token",
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    cfg = make_config()
    cfg.set_api_key("k")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cfg.jwt())) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["test-access-token"] * 5
    assert mgmt.state.count("/api/oidc/token") == 1
    assert mgmt.state.requests[-1].body == b'{"expires_in":3600}'


def test_token_refused_falls_back_to_api_key(make_config: MakeConfig) -> None:
    cfg = make_config()
    cfg.set_api_key("k")
    with pytest.raises(AuthorizationError):
        cfg.jwt()
    assert cfg.bearer() == "k"


def test_state_dir_open_to_others_is_tightened(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config()
    cfg.env_dir.mkdir(parents=True, mode=0o755)
    cfg.env_dir.chmod(0o755)
    cfg.load()
    assert stat.S_IMODE(cfg.env_dir.stat().st_mode) == 0o700
    assert any("open to other users" in r.getMessage() for r in caplog.records)


def test_certificate_appearing_on_disk_fires_waiter_on_load(
    make_config: MakeConfig, test_ca: TestCA
) -> None:
    cfg = make_config()
    cfg.load()
    waiter = cfg.wait_for_config_change()
    issued = test_ca.issue("new-abc123.devel.mon.ntppool.dev")
    cfg.cert_path.write_bytes(issued.cert_pem)
    cfg.key_path.write_bytes(issued.key_pem)
    cfg.load()
    assert waiter.done.is_set() and cfg.have_certificate()
