"""``check IP...``: probe servers once from the command line and print a readable table."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ntpmon.agent.config.checkconfig import CheckConfig

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 60.0
HEADERS = ("server", "offset", "delay", "stratum", "leap", "error")


@dataclass(frozen=True, slots=True)
class CheckRow:
    server: str
    offset_ns: int | None
    delay_ns: int | None
    stratum: int | None
    leap: int | None
    error: str


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f} ms"


def _opt(v: int | None) -> str:
    return "-" if v is None else str(v)


def format_table(rows: Sequence[CheckRow]) -> str:
    """Aligned columns: server, offset, delay, stratum, leap, error."""
    cells = [HEADERS] + [
        (r.server, _ms(r.offset_ns), _ms(r.delay_ns), _opt(r.stratum), _opt(r.leap), r.error)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def row_from_result(server: str, result: tuple[Any, Any, str | None]) -> CheckRow:
    status, resp, err = result
    offset = delay = stratum = leap = None
    if resp is not None:
        offset, delay = resp.clock_offset_ns, resp.rtt_ns
        stratum, leap = resp.stratum, resp.leap
    if status is not None and status.HasField("offset") and resp is None:
        offset = status.offset.ToNanoseconds()
    return CheckRow(server, offset, delay, stratum, leap, err or "")


def run_check(
    targets: Sequence[str],
    cfg: CheckConfig,
    *,
    check_host: Callable[..., tuple[Any, Any, str | None]] | None = None,
) -> list[CheckRow]:
    """Probe each parseable IP concurrently; invalid ones are logged and skipped."""
    if check_host is None:
        from ntpmon.ntp.check import check_host as engine_check

        check_host = engine_check
    ips = []
    for text in targets:
        try:
            ips.append(ipaddress.ip_address(text))
        except ValueError:
            log.error("could not parse IP", extra={"ip": text})
    with ThreadPoolExecutor(max_workers=max(1, len(ips))) as pool:
        futures = [(str(ip), pool.submit(check_host, ip, cfg)) for ip in ips]
        rows = []
        for server, future in futures:
            result = future.result(timeout=CHECK_TIMEOUT)
            status, resp, err = result
            log.info(
                "check",
                extra={
                    "server": server,
                    "error": err or "",
                    "status": str(status).strip(),
                    "response": repr(resp),
                },
            )
            rows.append(row_from_result(server, result))
    return rows
