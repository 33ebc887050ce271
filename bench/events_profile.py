"""Steady-state event ingest in one process, no transport: where the CPU goes per event.

    python bench/events_profile.py --meters 10000 --events 100000            # events/cpu-s
    python bench/events_profile.py --meters 10000 --events 50000 --profile   # + cProfile
    python bench/events_profile.py --pg postgresql://postgres@127.0.0.1:5432/test

The same fleet and simulator stream as `events_bench.py` (steady state), ingested with
`ingest_events` batch by batch in this process after a warm-up run that gives every meter
a state. Reports events per CPU-second of this process, so a busy machine disturbs it
little, and on PostgreSQL the CPU of the server process that served it, per event;
--profile prints the functions with the most own time and the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch_bench import drop_schema, pg_schema_url  # noqa: E402
from events_bench import TENANT, fleet, new_stream  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000, help="timed")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--warm", type=int, default=None, help="events before (--meters)")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (a fresh schema)")
    parser.add_argument("--fleet-cache", default=None, help="SQLite: as in events_bench.py")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    from events_bench import BackendCpu

    from meterline.gc_startup import freeze_startup_objects
    from meterline.runtime import open_runtime
    from meterline.services.meter_events import ingest_events

    with tempfile.TemporaryDirectory() as tmp:
        if args.pg:
            url, schema = pg_schema_url(args.pg)
        else:
            url = f"sqlite:///{Path(tmp) / 'events.db'}"
        fleet(url, args.meters, None if args.pg or not args.fleet_cache else Path(args.fleet_cache))
        stream = new_stream(args.meters, probes=0, cold=False)
        warm = stream.batches(
            args.meters if args.warm is None else args.warm, args.batch, timedelta(minutes=10)
        )
        timed = stream.batches(args.events, args.batch, timedelta(minutes=60))
        server = BackendCpu(url) if args.pg else None
        rt = open_runtime(database_url=server.tagged if server else url)
        try:

            def ingest(batches: list[bytes]) -> tuple[int, int]:
                alerts = messages = 0
                for body in batches:
                    report = ingest_events(
                        rt, TENANT, body.splitlines(), source="profile", now=datetime.now(UTC)
                    )
                    assert not report.rejected, report.errors[:3]
                    alerts += report.alerts
                    messages += report.messages
                return alerts, messages

            ingest(warm)
            freeze_startup_objects()  # as `meterline serve` and `meterline ingest` do
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            if server:
                server.begin()
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            alerts, messages = ingest(timed)
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server_cpu = server.seconds() if server else 0.0
        finally:
            rt.close()
            if args.pg:
                drop_schema(args.pg, schema)
    db = "postgresql" if args.pg else "sqlite"
    print(
        f"[{db}] {args.events:,} events in {wall:.1f} s wall, {cpu:.1f} s CPU:"
        f" {args.events / wall:,.0f}/s, {args.events / cpu:,.0f}/cpu-s"
        f" ({alerts} alerts, {messages} messages{', profiled' if profiler else ''})"
    )
    if args.pg:
        print(
            f"[{db}] server process {server_cpu:.1f} CPU-s,"
            f" {server_cpu / args.events * 1e6:.1f} µs an event"
        )
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
