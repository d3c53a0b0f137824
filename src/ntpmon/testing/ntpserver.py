"""A configurable NTP responder for tests and the local demo (``make run``).

It answers real UDP requests on any address and port with a chosen clock offset, stratum, leap,
reference id, extra delay, or a kiss-o'-death code, and it can misbehave on purpose: no answer,
a wrong origin timestamp, a truncated or empty packet, a wrong version or mode, a zero transmit
timestamp, or a receive time after the transmit time. Every outcome class of the agent's probe
can be produced with it over a real socket.

Command line (one responder per ``--listen``; runs until interrupted)::

    python -m ntpmon.testing.ntpserver --listen 127.0.0.5:12300 --offset 0.05 --stratum 2
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import enum
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ntpmon.ntp import wire
from ntpmon.ntp.kerneltime import ANCILLARY_BUFSIZE, Stamping, enable_stamping
from ntpmon.ntp.kerneltime import stamp_from_ancillary as _kernel_rx
from ntpmon.ntp.sntp import NTPNetworkError, resolve_target

STOP_TIMEOUT_S = 5.0
CLIENTS_KEPT = 1000
KISS_CODES = ("RATE", "DENY", "RSTR")


class Behaviour(enum.StrEnum):
    """How the responder answers (``normal`` is a valid reply)."""

    NORMAL = "normal"
    NO_ANSWER = "no-answer"
    WRONG_ORIGIN = "wrong-origin"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    WRONG_MODE = "wrong-mode"
    ZERO_TRANSMIT = "zero-transmit"
    TICKED_BACKWARDS = "ticked-backwards"
    RAW = "raw"
    """Send ``ResponderSettings.raw`` as it is (with the request's nonce as origin when
    ``echo_origin`` and the bytes are long enough): for hostile-reply tests."""


def reference_id_value(refid: int | str | bytes) -> int:
    """A refid from an int, or up to four characters/bytes (NUL-padded on the right)."""
    if isinstance(refid, int):
        return refid & 0xFFFFFFFF
    raw = refid.encode("latin-1") if isinstance(refid, str) else bytes(refid)
    if len(raw) > 4:
        raise ValueError(f"reference id {refid!r} is longer than 4 bytes")
    return int.from_bytes(raw.ljust(4, b"\0"), "big")


@dataclass(frozen=True)
class ResponderSettings:
    """What the responder says. Seconds are floats; ``kiss`` overrides stratum and refid."""

    offset: float = 0.0
    stratum: int = 2
    leap: int = 0
    version: int = 4
    reference_id: int | str | bytes = "GPS"
    delay: float = 0.0
    kiss: str | None = None
    behaviour: Behaviour = Behaviour.NORMAL
    root_delay: float = 0.0005
    root_dispersion: float = 0.001
    poll: int = 6
    precision: int = -20
    truncate_to: int = 40
    raw: bytes = b""
    echo_origin: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.leap <= 3:
            raise ValueError("leap must be 0..3")
        if not 0 <= self.stratum <= 255:
            raise ValueError("stratum must be 0..255")
        if not 0 <= self.version <= 7:
            raise ValueError("version must be 0..7")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.kiss is not None and len(self.kiss.encode("ascii")) != 4:
            raise ValueError("a kiss code has 4 ASCII characters")
        reference_id_value(self.reference_id)


def _seconds_to_q16(seconds: float) -> int:
    return max(0, min(0xFFFFFFFF, round(seconds * 65536)))


def build_reply(
    request: bytes, settings: ResponderSettings, rx_ns: int, tx_ns: int
) -> bytes | None:
    """The datagram to send for ``request`` received at ``rx_ns`` and sent at ``tx_ns`` (true
    Unix ns; the configured offset is added here), or None when nothing is to be sent."""
    if len(request) < wire.PACKET_LEN or settings.behaviour is Behaviour.NO_ANSWER:
        return None
    if settings.behaviour is Behaviour.EMPTY:
        return b""
    if settings.behaviour is Behaviour.RAW:
        if settings.echo_origin and len(settings.raw) >= 32:
            return settings.raw[:24] + request[40:48] + settings.raw[32:]
        return settings.raw
    client = wire.decode(request)
    shift = round(settings.offset * 1e9)
    rec = wire.unix_ns_to_ntp(rx_ns + shift)
    xmt = wire.unix_ns_to_ntp(tx_ns + shift)
    stratum, refid = settings.stratum, reference_id_value(settings.reference_id)
    if settings.kiss is not None:
        stratum, refid = 0, reference_id_value(settings.kiss)
    origin = client.transmit_ts
    match settings.behaviour:
        case Behaviour.WRONG_ORIGIN:
            origin ^= 0xFFFF
        case Behaviour.ZERO_TRANSMIT:
            xmt = 0
        case Behaviour.TICKED_BACKWARDS:
            rec, xmt = xmt + (1 << 20), rec
    reply = wire.Packet(
        leap=settings.leap,
        version=settings.version,
        mode=wire.MODE_CLIENT if settings.behaviour is Behaviour.WRONG_MODE else wire.MODE_SERVER,
        stratum=stratum,
        poll=settings.poll,
        precision=settings.precision,
        root_delay=_seconds_to_q16(settings.root_delay),
        root_dispersion=_seconds_to_q16(settings.root_dispersion),
        reference_id=refid,
        reference_ts=wire.unix_ns_to_ntp(rx_ns + shift - 16 * wire.NS_PER_S),
        origin_ts=origin,
        receive_ts=rec,
        transmit_ts=xmt,
    )
    data = wire.encode(reply)
    if settings.behaviour is Behaviour.TRUNCATED:
        return data[: settings.truncate_to]
    return data


class NTPResponder:
    """An NTP server on one UDP address, answering from a background thread.

    Use as a context manager; ``configure(...)`` changes the answers while it runs,
    ``script(...)`` sets the answers of the next requests one by one, ``requests`` counts the
    requests seen (so tests can check when a probe stopped) and ``clients`` lists the source
    addresses they came from.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, settings: ResponderSettings | None = None
    ) -> None:
        family, sockaddr = resolve_target(host, port)
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._stamping = enable_stamping(self._sock, Stamping.KERNEL)
            self._sock.bind(sockaddr)
        except OSError:
            self._sock.close()
            raise
        self._settings = settings or ResponderSettings()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._requests = 0
        self._script: list[ResponderSettings] = []
        self._clients: collections.deque[str] = collections.deque(maxlen=CLIENTS_KEPT)
        self._thread = threading.Thread(
            target=self._serve, name=f"ntp-responder-{host}", daemon=True
        )

    @property
    def host(self) -> str:
        return self._sock.getsockname()[0]

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def settings(self) -> ResponderSettings:
        with self._lock:
            return self._settings

    @property
    def clients(self) -> list[str]:
        with self._lock:
            return list(self._clients)

    def script(self, *answers: ResponderSettings) -> None:
        """Answer the next requests with these settings in order, then with the base settings."""
        with self._lock:
            self._script = list(answers)

    def configure(self, **changes: object) -> ResponderSettings:
        """Replace some settings (validated) for the requests that follow."""
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            return self._settings

    def start(self) -> NTPResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: a datagram to ourselves wakes the blocked thread (no polling)."""
        self._stop.set()
        if self._thread.is_alive():
            self._wake()
            self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()

    def _wake(self) -> None:
        address = self._sock.getsockname()
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (a wildcard bind is woken on loopback)
        target = (wildcard.get(address[0], address[0]), *address[1:])
        with contextlib.suppress(OSError), socket.socket(self._sock.family, socket.SOCK_DGRAM) as s:
            s.sendto(b"", target)

    def __enter__(self) -> NTPResponder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancdata, _flags, peer = self._sock.recvmsg(8192, ANCILLARY_BUFSIZE)
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if self._stop.is_set():
                return
            rx_ns = (_kernel_rx(ancdata) if self._stamping.rx else None) or time.time_ns()
            with self._lock:
                self._requests += 1
                self._clients.append(str(peer[0]))
                settings = self._script.pop(0) if self._script else self._settings
            if settings.delay:
                time.sleep(settings.delay)
            reply = build_reply(data, settings, rx_ns, time.time_ns())
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    continue


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.5:12300`` or ``[::1]:12300`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ntpmon.testing.ntpserver",
        description="Answer NTP requests with a configurable clock (tests and local demo).",
    )
    parser.add_argument(
        "--listen", action="append", type=parse_listen, required=True, help="HOST:PORT, repeatable"
    )
    parser.add_argument("--offset", type=float, default=0.0, help="clock offset in seconds")
    parser.add_argument("--stratum", type=int, default=2)
    parser.add_argument("--leap", type=int, default=0, choices=range(4))
    parser.add_argument("--version", dest="ntp_version", type=int, default=4)
    parser.add_argument("--refid", default="GPS", help="reference id, up to 4 characters")
    parser.add_argument("--delay", type=float, default=0.0, help="extra seconds before answering")
    parser.add_argument("--kiss", choices=KISS_CODES, help="answer with this kiss-o'-death code")
    parser.add_argument(
        "--behaviour",
        type=Behaviour,
        default=Behaviour.NORMAL,
        choices=list(Behaviour),
        help="misbehave on purpose",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run responders until SIGINT/SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = ResponderSettings(
            offset=args.offset,
            stratum=args.stratum,
            leap=args.leap,
            version=args.ntp_version,
            reference_id=args.refid,
            delay=args.delay,
            kiss=args.kiss,
            behaviour=args.behaviour,
        )
    except ValueError as exc:
        parser.error(str(exc))
    responders: list[NTPResponder] = []
    try:
        for host, port in args.listen:
            try:
                responders.append(NTPResponder(host, port, settings).start())
            except (OSError, NTPNetworkError) as exc:
                parser.exit(1, f"{parser.prog}: error: cannot listen on {host}:{port}: {exc}\n")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        for r in responders:
            print(f"ntp responder listening on {r.host}:{r.port}", flush=True)
        stop.wait()
    finally:
        for r in responders:
            r.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
