"""Finding ``buf`` without the network: PATH first, then an earlier install in the cache.

The npm install itself talks to the registry, so it is exercised by the first ``buf curl``
test on a machine without buf (tests/api/test_buf_curl.py), not here.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ntpmon.testing.bufcli import BufError, buf_binary, cache_dir


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_buf_on_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _executable(tmp_path / "bin" / "buf")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert buf_binary(tmp_path / "cache") == on_path
    assert not (tmp_path / "cache").exists()


def test_an_earlier_install_is_reused_native_binary_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cache = tmp_path / "cache"
    _executable(cache / "node_modules" / ".bin" / "buf")
    native = _executable(cache / "node_modules" / "@bufbuild" / "buf-linux-x64" / "bin" / "buf")
    assert buf_binary(cache) == native


def test_the_cache_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ntpmon" / "buf"


def test_without_npm_or_apt_get_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BufError, match=r"buf needs npm: .*apt-get install npm"):
        buf_binary(tmp_path / "cache")
    assert (tmp_path / "buf.lock").exists()
