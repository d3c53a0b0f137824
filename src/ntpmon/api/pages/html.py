"""Small HTML building blocks for the status pages: the page frame, tables and formatting.

Everything is escaped here; views pass plain values. The style sheet is inline so the pages
need nothing but this server (no CDN, no JavaScript).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape

from ntpmon.common.clock import as_utc

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #f4f5f7; }
header { background: #1d3557; color: #fff; padding: 10px 24px; display: flex; gap: 24px;
         align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .brand { font-size: 20px; }
main { padding: 16px 24px; }
h1 { font-size: 22px; margin: 8px 0 16px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
table { border-collapse: collapse; background: #fff; min-width: 60%; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e3e3; text-align: left;
         font-variant-numeric: tabular-nums; }
th { background: #e9edf3; }
td.num { text-align: right; }
.good { color: #17803d; font-weight: 600; }
.warn { color: #b36b00; font-weight: 600; }
.bad { color: #c0262d; font-weight: 600; }
.muted { color: #777; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px;
         background: #e3e7ee; margin-right: 4px; }
.badge.active { background: #cdeccf; } .badge.testing { background: #fcefc7; }
.badge.paused, .badge.deleted { background: #f6d0d0; } .badge.online { background: #cdeccf; }
.badge.offline { background: #f6d0d0; }
figure { margin: 0 0 16px; background: #fff; display: inline-block; padding: 4px; }
footer { padding: 8px 24px; color: #777; font-size: 12px; }
"""

SCORE_USABLE = 10.0
"""The score from which the NTP Pool hands a server out (used to colour scores)."""


def page(title: str, body: str, *, nav: Mapping[str, str], generated: datetime) -> str:
    """A complete HTML document with the navigation bar and the inline style sheet."""
    links = "".join(f'<a href="{escape(url)}">{escape(label)}</a>' for label, url in nav.items())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · ntpmon</title><style>{STYLE}</style></head>"
        f'<body><header><span class="brand">ntpmon</span>{links}</header>'
        f"<main><h1>{escape(title)}</h1>{body}</main>"
        f"<footer>Generated {escape(timestamp(generated))} UTC · read-only status</footer>"
        "</body></html>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str) -> str:
    """A table of already-rendered cells (use :func:`cell` / :func:`text`), or ``empty``."""
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text(value: object, *, css: str = "") -> str:
    """A table cell holding escaped text (empty for None)."""
    shown = "" if value is None else escape(str(value))
    return f'<td class="{css}">{shown}</td>' if css else f"<td>{shown}</td>"


def cell(markup: str, *, css: str = "") -> str:
    """A table cell holding markup the caller has already escaped."""
    return f'<td class="{css}">{markup}</td>' if css else f"<td>{markup}</td>"


def link(url: str, label: str) -> str:
    return f'<a href="{escape(url)}">{escape(label)}</a>'


def badge(label: str) -> str:
    return f'<span class="badge {escape(label)}">{escape(label)}</span>'


def score_class(score: float) -> str:
    """good from the usable score up, warn when above zero, bad otherwise."""
    if score >= SCORE_USABLE:
        return "good"
    return "warn" if score > 0 else "bad"


def score_cell(score: float) -> str:
    return text(f"{score:.1f}", css=f"num {score_class(score)}")


def timestamp(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, or an em dash for never."""
    if value is None:
        return "—"
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def age(value: datetime | None, now: datetime) -> str:
    """How long ago ``value`` was, coarsely (``45s ago``, ``12m ago``, ``3h ago``, ``2d ago``)."""
    if value is None:
        return "never"
    delta = as_utc(now) - as_utc(value)
    if delta < timedelta(0):
        return "in the future"
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def milliseconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.3f} ms"
