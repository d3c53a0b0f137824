"""How precisely does the engine measure a clock? 1,000 samples against chronyd on loopback.

chronyd (a private instance that never touches the system clock) and the client read the same
system clock, so the true offset is zero and every measured |offset| is pure measurement error.
Three clients take turns, sample by sample, so they see the same conditions:

* ``kernel``  — this engine with kernel TX/RX timestamps (the default);
* ``user``    — this engine forced onto its user-space fallback (``time_ns`` around send/recv);
* ``ntplib``  — the ntplib package, for comparison.

Three conditions: an idle host; every core saturated by CPU burner processes (``while True:
pass`` at normal priority) that the benchmark starts and stops itself; and the same load with
chronyd under SCHED_FIFO (``-P 1``). The third isolates the client: at normal priority chronyd
itself is sometimes preempted between reading its clock for the transmit timestamp and sending
the reply, an error of the reference (always negative, ≈ −rtt/2) that no client can remove.
Target: p99 |offset| <= 5 µs under full CPU load with kernel timestamps.

Run: ``python bench/ntp_precision.py [--samples N]`` (or ``make bench BENCH=ntp_precision``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import ntplib

from ntpmon.ntp import sntp
from ntpmon.testing.chronyd import private_chronyd

BURNER = "while True:\n    pass\n"


@contextlib.contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """``count`` busy-looping processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let the scheduler spread them
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


Sample = tuple[float, float]
"""(signed offset, rtt) in µs."""


def measure(
    clients: dict[str, Callable[[], Sample]], samples: int, spacing: float
) -> tuple[dict[str, list[Sample]], dict[str, int]]:
    """Samples per client, round-robin; failures are counted, not raised.

    A short sleep before each query makes every query start from a sleeping thread, as a real
    probe (2 s apart) does, instead of from a process the scheduler already has on a CPU.
    """
    results: dict[str, list[Sample]] = {name: [] for name in clients}
    failures: dict[str, int] = dict.fromkeys(clients, 0)
    for _ in range(samples):
        for name, client in clients.items():
            time.sleep(spacing)
            try:
                results[name].append(client())
            except (sntp.NTPNetworkError, sntp.NTPProtocolError, ntplib.NTPException, OSError):
                failures[name] += 1
    return results, failures


def make_clients(host: str, port: int) -> dict[str, Callable[[], Sample]]:
    ntplib_client = ntplib.NTPClient()

    def kernel() -> Sample:
        response = sntp.query(host, port=port, timeout=1.0)
        if response.stamping != "kernel":
            raise sntp.NTPProtocolError(f"kernel timestamps not used ({response.stamping})")
        return response.clock_offset_ns / 1000, response.rtt_ns / 1000

    def user() -> Sample:
        response = sntp.query(host, port=port, timeout=1.0, stamping=sntp.Stamping.USER)
        return response.clock_offset_ns / 1000, response.rtt_ns / 1000

    def with_ntplib() -> Sample:
        response = ntplib_client.request(host, port=port, version=4, timeout=1.0)
        return response.offset * 1e6, response.delay * 1e6

    return {"kernel": kernel, "user": user, "ntplib": with_ntplib}


def reference_side(samples: list[Sample], beyond_us: float) -> tuple[int, int]:
    """How many samples exceed ``beyond_us``, and how many of those show the signature of a
    delay on the reference's send path: a negative offset of at least 40 % of the rtt."""
    tail = [(o, r) for o, r in samples if abs(o) > beyond_us]
    return len(tail), sum(1 for o, r in tail if o < 0 and -o >= 0.4 * r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--spacing", type=float, default=0.002, help="seconds between queries")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    target_us = 5.0
    rows = []
    notes = []
    started = time.monotonic()
    conditions = (
        ("idle", 0, None),
        (f"{cores} burners", cores, None),
        (f"{cores} burners, chronyd FIFO", cores, 1),
    )
    for condition, burners, priority in conditions:
        load_before = os.getloadavg()[0]
        with private_chronyd(realtime_priority=priority) as chronyd:
            clients = make_clients(chronyd.host, chronyd.port)
            with cpu_burners(burners) if burners else contextlib.nullcontext():
                results, failures = measure(clients, args.samples, args.spacing)
        for name, samples in results.items():
            values = sorted(abs(o) for o, _r in samples)
            nan = float("nan")
            rows.append(
                (
                    condition,
                    f"{load_before:.1f}",
                    name,
                    len(values),
                    failures[name],
                    statistics.median(values) if values else nan,
                    percentile(values, 99) if values else nan,
                    values[-1] if values else nan,
                    statistics.median(r for _o, r in samples) if samples else nan,
                )
            )
            if name == "kernel":
                tail, peer = reference_side(samples, target_us)
                notes.append(
                    f"kernel, {condition}: {tail} samples beyond {target_us:g} µs, {peer} of them"
                    " with offset <= -0.4·rtt (delay on the reference's send path)"
                )

    print(f"ntp_precision: |offset| against chronyd on 127.0.0.1 ({cores} cores, µs)")
    header = (
        f"{'condition':<28} {'load1':>5} {'client':<7} {'n':>5} {'fail':>4}"
        f" {'median':>8} {'p99':>9} {'max':>9} {'rtt med':>8}"
    )
    print(header)
    print("-" * len(header))
    for condition, load, name, n, fail, med, p99, peak, rtt in rows:
        print(
            f"{condition:<28} {load:>5} {name:<7} {n:>5} {fail:>4}"
            f" {med:>8.2f} {p99:>9.2f} {peak:>9.2f} {rtt:>8.1f}"
        )
    print("load1 = the host's 1-minute load average before the condition started")
    for note in notes:
        print(note)
    for condition, _load, name, _n, _fail, _med, p99, _peak, _rtt in rows:
        if condition != "idle" and name == "kernel":
            verdict = "met" if p99 <= target_us else "NOT met"
            print(f"target p99 <= {target_us:g} µs, kernel timestamps, {condition}: {verdict}")
    print(f"runtime {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
