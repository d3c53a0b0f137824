"""Scorer catch-up throughput on MariaDB (issue 6): a generated 1,000,000-row backlog.

100 monitors, 5,000 servers, 10 assignments per server (6 active, 3 testing, 1 candidate),
each pair sampled about every 9 minutes, so the backlog is three hours of the whole pool.
The runner then catches up (run after run, as ``scorer server`` does) and the figures are
printed. Target: >= 5,000 input rows/s, i.e. both scorers over every row.

    python bench/scorer_throughput.py [--rows N] [--batch-size N] [--max-seconds S]
        [--covering-index server_id,ts,monitor_id,step,rtt]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.schema import CreateIndex, DropIndex

from ntpmon.common.clock import SystemClock
from ntpmon.db.tables import log_scores
from ntpmon.scorer.metrics import ScorerMetrics
from ntpmon.scorer.runner import Runner
from ntpmon.scorer.setup import setup_scorers
from ntpmon.testing.databases import temporary_mysql_database
from ntpmon.testing.scorer_backlog import create_pool, insert_rows, measurements

MONITORS, SERVERS, PER_SERVER = 100, 5000, 10


def widen_server_ts_index(engine: Engine, wide: tuple[str, ...]) -> None:
    """Replace (server_id, ts) by ``wide`` (e.g. server_id, ts, monitor_id, step, rtt).

    An experiment on the temporary database only, to measure a candidate schema: with
    ``monitor_id`` it makes recentmedian's per-monitor MAX(ts) an index-only scan. A temporary
    wide index keeps the server_id foreign key covered while the old one is dropped. Built on
    detached table objects, so ntpmon's metadata is untouched.
    """

    def index(name: str, *columns: str) -> Index:
        shadow = Table(
            "log_scores",
            MetaData(),
            *(Column(c, DateTime if c == "ts" else Integer) for c in {*wide, "server_id", "ts"}),
        )
        return Index(name, *(shadow.c[c] for c in columns))

    steps = [
        CreateIndex(index("log_scores_server_ts_tmp", *wide)),
        DropIndex(index("log_scores_server_ts_idx", "server_id", "ts")),
        CreateIndex(index("log_scores_server_ts_idx", *wide)),
        DropIndex(index("log_scores_server_ts_tmp", *wide)),
    ]
    with engine.begin() as conn:
        for step in steps:
            conn.execute(step)


class StatementTimes:
    """Wall time per statement kind, to show where a batch spends its time."""

    def __init__(self, engine: Engine) -> None:
        self.times: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        conn.info["bench_t"] = time.perf_counter()

    def _after(self, conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        words = " ".join(statement.split())
        kind = words[:48] + (" ... GROUP BY" if "GROUP BY" in words else "")
        entry = self.times[kind]
        entry[0] += time.perf_counter() - conn.info["bench_t"]
        entry[1] += 1

    def top(self, n: int) -> list[tuple[str, list[float]]]:
        return sorted(self.times.items(), key=lambda kv: -kv[1][0])[:n]


INTERVAL = timedelta(minutes=9)


def mariadb_cpu_seconds() -> float | None:
    """User + system CPU seconds of the local mariadbd/mysqld (Linux /proc), if there is one."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name in ("mariadbd", "mysqld"):
            fields = stat[stat.rindex(")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=10_000,
        help="system_settings scorer batch_size (default 10,000: the catch-up setting; Q21's "
        "id window caps a batch at 9,999 rows)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=420.0,
        help="stop catching up after this long and project the time to clear",
    )
    parser.add_argument(
        "--covering-index",
        nargs="?",
        const="server_id,ts,monitor_id",
        default=None,
        metavar="COLUMNS",
        help="experiment: replace the (server_id, ts) index by these comma-separated columns "
        "before catching up (default without a value: server_id,ts,monitor_id)",
    )
    args = parser.parse_args()
    rng = random.Random(6)
    now = datetime.now(UTC).replace(microsecond=0)
    pairs = SERVERS * PER_SERVER
    span = INTERVAL * (args.rows / pairs)
    start = now - span

    with temporary_mysql_database("ntpmon_bench") as engine:
        t0 = time.perf_counter()
        pool = create_pool(
            engine,
            monitors_count=MONITORS,
            servers_count=SERVERS,
            per_server=PER_SERVER,
            now=now,
            rng=rng,
        )
        seed = next(
            measurements(
                pool, start=start - timedelta(hours=1), end=start, interval=INTERVAL, rng=rng
            )
        )
        insert_rows(engine, [seed])
        setup_scorers(engine, now=now)
        rows = itertools.islice(
            measurements(pool, start=start, end=now + INTERVAL, interval=INTERVAL, rng=rng),
            args.rows,
        )
        inserted = insert_rows(engine, rows)
        generate_s = time.perf_counter() - t0
        with engine.begin() as conn:
            from ntpmon.db.admin import set_system_setting

            set_system_setting(conn, key="scorer", value={"batch_size": args.batch_size}, now=now)
            first, last = conn.execute(
                select(func.min(log_scores.c.ts), func.max(log_scores.c.ts)).where(
                    log_scores.c.ts >= start.replace(tzinfo=None)
                )
            ).one()

        if args.covering_index:
            t_index = time.perf_counter()
            columns = tuple(c.strip() for c in args.covering_index.split(","))
            widen_server_ts_index(engine, columns)
            built_s = time.perf_counter() - t_index
            print(f"  covering index ({', '.join(columns)}) built in {built_s:.1f} s", flush=True)
        metrics = ScorerMetrics()
        runner = Runner(engine, metrics=metrics, clock=SystemClock())
        sql = StatementTimes(engine)
        runs = 0
        cpu0 = time.process_time()
        db_cpu0 = mariadb_cpu_seconds()
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < args.max_seconds and runner.run():
            runs += 1
            if runs % 20 == 0:
                elapsed = time.perf_counter() - t1
                done = runs * args.batch_size
                print(
                    f"  ... {done:>9,d} rows in {elapsed:6.1f} s ({done / elapsed:,.0f}/s)",
                    flush=True,
                )
        catch_up_s = time.perf_counter() - t1
        cpu_s = time.process_time() - cpu0
        db_cpu1 = mariadb_cpu_seconds()
        db_cpu_s = None if db_cpu0 is None or db_cpu1 is None else db_cpu1 - db_cpu0
        load = os.getloadavg()[0]
        with engine.begin() as conn:
            written = dict(
                conn.execute(
                    select(log_scores.c.monitor_id, func.count())
                    .where(log_scores.c.monitor_id.not_in(pool.monitor_ids))
                    .group_by(log_scores.c.monitor_id)
                ).all()
            )
        processed = dict(metrics.plain.processed)

    input_rows = int(min(processed.values()))
    cleared = input_rows >= inserted
    print("scorer catch-up benchmark (MariaDB, one process)")
    print(
        f"  backlog            {inserted:>12,d} log_scores ({MONITORS} monitors, {SERVERS} servers)"
    )
    print(f"  backlog time span  {last - first!s:>12s}")
    print(f"  generate + insert  {generate_s:>12.1f} s ({inserted / generate_s:,.0f} rows/s)")
    print(f"  batch size         {args.batch_size:>12,d}")
    print(f"  runs               {runs:>12,d}")
    for name, count in sorted(processed.items()):
        print(f"  processed {name:<12s} {count:>10,.0f}")
    print(f"  output rows        {sum(written.values()):>12,d}  {written}")
    if cleared:
        print(f"  time to clear      {catch_up_s:>12.1f} s")
    else:
        projected = inserted / (input_rows / catch_up_s)
        print(f"  stopped after      {catch_up_s:>12.1f} s ({input_rows:,} of {inserted:,} rows)")
        print(f"  projected clear    {projected:>12.1f} s")
    print(
        f"  scorer CPU time    {cpu_s:>12.1f} s "
        f"({cpu_s / catch_up_s:.0%} of wall; load avg {load:.1f})"
    )
    if db_cpu_s is not None:
        print(f"  MariaDB CPU time   {db_cpu_s:>12.1f} s (the whole server: other clients too)")
        per_row = (cpu_s + db_cpu_s) / max(input_rows, 1) * 1e6
        print(f"  CPU per input row  {per_row:>12.0f} µs (scorer + MariaDB, both scorers)")
    print(f"  throughput         {input_rows / catch_up_s:>12,.0f} input rows/s (both scorers)")
    print(f"  scorer-row work    {sum(processed.values()) / catch_up_s:>12,.0f} rows/s")
    print(f"  target             {5000:>12,d} input rows/s")
    print("  database time by statement (s, count):")
    for name, (seconds, count) in sql.top(8):
        print(f"    {seconds:8.1f} {count:7,d}  {name}")


if __name__ == "__main__":
    main()
