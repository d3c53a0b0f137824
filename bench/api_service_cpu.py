"""monitor-api's own CPU per GetServers + SubmitResults pair, without gRPC, on MariaDB.

``api_submit.py`` measures the whole server under concurrent load, where the machine's other
work, the GIL and the clients blur the figures. This one calls the service methods directly in
one thread, so its CPU per pair (``time.process_time``) is what the handlers and the database
layer cost, almost unaffected by load, and it counts the requests sent to MariaDB per RPC
(every PyMySQL command is one round trip: statements, COMMIT, and the pool's pings).
``--profile`` prints the top functions of a cProfile run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Callable

from api_submit import (
    BATCH,
    _ip,
    _name,
    cpu_seconds,
    database_pid,
    reset,
    seed,
    statuses_for,
)

from ntpmon.api.metrics import ApiMetrics
from ntpmon.api.service import PING_AFTER_IDLE, CallInfo, MonitorService
from ntpmon.api.tickets import StaticKeyring, TicketSigner
from ntpmon.common.clock import SystemClock
from ntpmon.db.config import resolve_settings
from ntpmon.db.engine import create_db_engine
from ntpmon.pb.monitor.v2 import monitor_manager_pb2 as pb
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.roundtrips import counting_round_trips

MONITORS = 10
UA = "ntppool-agent/v4.1.5"


def pair(service: MonitorService, i: int) -> pb.GetServersResponse:
    call = CallInfo(_name(i), UA)
    batch = service.get_servers(pb.GetServersRequest(mon_id=_ip(i)), call)
    request = pb.SubmitResultsRequest(
        version=4, mon_id=_ip(i), batch_id=batch.batch_id, list=statuses_for(batch)
    )
    service.submit_results(request, call)
    return batch


def run(service: MonitorService, pairs: int) -> None:
    for k in range(pairs):
        pair(service, k % MONITORS)
        if k % MONITORS == MONITORS - 1:
            time.sleep(0.002)  # batch ids are ms-precise: keep a monitor's next one newer


def measure(label: str, fn: Callable[[], None], pairs: int) -> None:
    db_pid = database_pid()
    db0 = cpu_seconds(db_pid) if db_pid else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    db = cpu_seconds(db_pid) - db0 if db_pid else float("nan")
    print(
        f"{label:>10}: {pairs} pairs, CPU {cpu * 1000 / pairs:.2f} ms/pair "
        f"(MariaDB {db * 1000 / pairs:.2f}), wall {wall * 1000 / pairs:.2f} ms/pair"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args()
    with temporary_mysql_database("ntpmon_bench") as db:
        seed(db, MONITORS)
        reset(db)
        # the pool as ``monitor-api server`` sets it up
        engine = create_db_engine(
            resolve_settings(db.url.render_as_string(hide_password=False)),
            pool_size=2,
            max_overflow=0,
            ping_after_idle=PING_AFTER_IDLE,
        )
        service = MonitorService(
            engine, TicketSigner(StaticKeyring({1: b"bench-key"})), SystemClock(), ApiMetrics()
        )
        for i in range(MONITORS):
            service.get_config(pb.GetConfigRequest(mon_id=_ip(i)), CallInfo(_name(i), UA))
        run(service, 2 * MONITORS)  # warm the pool, the caches and the settings
        call = CallInfo(_name(0), UA)
        with counting_round_trips(engine) as counts:
            service.get_servers(pb.GetServersRequest(mon_id=_ip(0)), call)
        print(f"GetServers round trips: {sum(counts.values())} {dict(counts)}")
        with counting_round_trips(engine) as submit_counts:
            batch = service.get_servers(pb.GetServersRequest(mon_id=_ip(2)), CallInfo(_name(2), UA))
            submit_counts.clear()
            service.submit_results(
                pb.SubmitResultsRequest(
                    version=4, mon_id=_ip(2), batch_id=batch.batch_id, list=statuses_for(batch)
                ),
                CallInfo(_name(2), UA),
            )
        print(f"SubmitResults round trips ({BATCH} results): {sum(submit_counts.values())} "
              f"{dict(submit_counts)}")  # fmt: skip
        reset(engine)
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU, not waits
            measure("profiled", lambda: profile.runcall(run, service, args.pairs), args.pairs)
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(r"ntpmon|execute|commit|connect", 40)
        else:
            measure("in-process", lambda: run(service, args.pairs), args.pairs)
        engine.dispose()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
