"""``setup`` against the HTTPS management stand-in (agent.md §6.4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from agent.fake_management import ManagementServer
from ntpmon.agent.cli.setup import SetupRequest, run_setup
from ntpmon.agent.config.appconfig import AppConfig
from ntpmon.agent.config.mgmt import ManagementError
from ntpmon.common.ulid import is_ulid

MakeConfig = Callable[..., AppConfig]
JSON = "application/json"


def reg(
    status: str, token: str = "", url: str = "https://x/monitor/registration/R"
) -> tuple[int, str, bytes]:
    return 200, JSON, json.dumps({"URL": url, "Status": status, "APIToken": token}).encode()


def setup(
    cfg: AppConfig, mgmt: ManagementServer, ca_file: Path, **req: object
) -> tuple[list[str], list[float]]:
    printed: list[str] = []
    slept: list[float] = []
    request = SetupRequest(
        req.get("hostname", "host1"),
        req.get("account"),
        req.get("ipv4", True),
        req.get("ipv6", False),  # type: ignore[arg-type]
    )
    run_setup(
        cfg,
        request,
        api_base=mgmt.url,
        ca_file=str(ca_file),
        environ={},
        out=printed.append,
        sleep=slept.append,
    )
    return printed, slept


def test_pending_then_accepted_stores_key_and_prints_url_once(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    mgmt.state.registration = [reg("pending"), reg("pending"), reg("accepted", "the-api-key")]
    cfg = make_config()
    cfg.load()
    printed, slept = setup(cfg, mgmt, ca_file, account="42")
    assert cfg.api_key() == "the-api-key"
    assert json.loads(cfg.state_path.read_text())["API"]["APIKey"] == "the-api-key"
    assert len(printed) == 1 and "https://x/monitor/registration/R" in printed[0]
    assert "Please visit the following URL" in printed[0]
    assert slept == [5.0, 5.0]
    posts = [r for r in mgmt.state.requests if r.path == "/monitor/api/registration"]
    ids = {r.headers["Registration-ID"] for r in posts}
    assert len(posts) == 3 and len(ids) == 1 and is_ulid(ids.pop())
    assert parse_qs(posts[0].body.decode()) == {"hostname": ["host1"], "a": ["42"]}
    assert posts[0].headers["User-Agent"].startswith("ntppool-agent/v")
    assert "Authorization" not in posts[0].headers


def test_existing_key_is_sent_and_completed_finishes(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    cfg = make_config()
    cfg.set_api_key("old-key")
    mgmt.state.registration = [reg("completed")]
    setup(cfg, mgmt, ca_file)
    post = next(r for r in mgmt.state.requests if r.path == "/monitor/api/registration")
    assert post.headers["Authorization"] == "Bearer old-key"
    assert cfg.api_key() == "old-key"


def test_server_errors_wait_ten_seconds_and_text_is_printed(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    mgmt.state.registration = [
        (503, "text/plain", b"busy"),
        (200, "text/plain; charset=utf-8", b"registration closed"),
    ]
    cfg = make_config()
    printed, slept = setup(cfg, mgmt, ca_file)
    assert slept == [10.0] and printed == ["registration closed"]
    assert cfg.api_key() == ""


def test_unexpected_content_type_is_an_error(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    mgmt.state.registration = [(200, "text/html", b"<html>")]
    with pytest.raises(ManagementError, match="unexpected content type: text/html"):
        setup(make_config(), mgmt, ca_file)


def test_both_families_disabled_sends_nothing(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    setup(make_config(), mgmt, ca_file, ipv4=False, ipv6=False)
    assert mgmt.state.count("/monitor/api/registration") == 0


def test_accepted_without_token_keeps_no_key(
    make_config: MakeConfig, mgmt: ManagementServer, ca_file: Path
) -> None:
    mgmt.state.registration = [reg("accepted", "")]
    cfg = make_config()
    setup(cfg, mgmt, ca_file)
    assert cfg.api_key() == ""
