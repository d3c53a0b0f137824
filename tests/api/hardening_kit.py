"""Attack-shaped clients for the hardening tests (issue 15): a chunked upload that never ends,
half-open TLS connections, a process's memory read from /proc. Loopback only."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of a process in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def client_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False
    return context


def connect(port: int, tls: ssl.SSLContext | None, timeout: float = 10.0) -> socket.socket:
    """A connection to a loopback port, TLS when ``tls`` is given (HTTP/1.1 by ALPN)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is None:
        return raw
    tls.set_alpn_protocols(["http/1.1"])
    return tls.wrap_socket(raw, server_hostname="localhost")


def _read_available(sock: socket.socket) -> bytes:
    """What can be read now without blocking (TLS records may hold no application data)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return b""
    except OSError:
        return b""
    finally:
        sock.settimeout(10.0)


@dataclass
class UploadResult:
    status_line: str
    response: bytes
    sent: int  # body bytes the server took before it stopped reading


def chunked_upload(
    sock: socket.socket, path: str, headers: dict[str, str], total: int, method: str = "POST"
) -> UploadResult:
    """POST ``total`` bytes as chunks until the server answers (or refuses to read on), then
    read its answer to the end."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
    response = b""
    sent = 0
    with contextlib.suppress(OSError):
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10.0)
            if readable:
                data = _read_available(sock)
                response += data
                if response:
                    break  # answered: read the rest below, send no more
            if writable:
                sock.sendall(chunk)
                sent += CHUNK
            if not readable and not writable:
                break
        if sent >= total:
            sock.sendall(b"0\r\n\r\n")  # the last chunk: the body is complete
    sock.settimeout(10.0)
    with contextlib.suppress(OSError):
        while len(response) < 65536:  # until the server closes (Connection: close)
            data = sock.recv(65536)
            if not data:
                break
            response += data
    return UploadResult(response.split(b"\r\n", 1)[0].decode("latin-1"), response, sent)


# A TLS record header announcing a 512-byte handshake message, then only part of it.
PARTIAL_CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections that never finish a TLS handshake: every other one sends
    nothing at all, the rest a partial ClientHello."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        if i % 2:
            sock.sendall(PARTIAL_CLIENT_HELLO)
        sockets.append(sock)
    return sockets


def wait_closed(sockets: list[socket.socket], within: float) -> int:
    """How many of ``sockets`` the server closed within ``within`` seconds (EOF or reset)."""
    deadline = time.monotonic() + within
    pending = list(sockets)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select(pending, [], [], min(remaining, 1.0))
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                pending.remove(sock)
    return len(sockets) - len(pending)
