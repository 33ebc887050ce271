"""Dispatch throughput: queued messages to the sms_http stand-in over real HTTP.

    python bench/dispatch_bench.py --messages 20000 [--pg postgresql://postgres@127.0.0.1/test]

The provider stand-in (tests/support/gateway_standin.py) runs as its own process. For
each setup N messages are queued first (not timed); then the clock runs from the start
of dispatch until the database shows every message sent:

  sqlite      the in-process dispatcher (what `meterline serve` runs) on a SQLite file
  pg x1, x2   1 and 2 `meterline worker` processes on PostgreSQL (FOR UPDATE SKIP LOCKED)
  baseline    a bare aiohttp loop posting the same payloads to the same stand-in with the
              same concurrency, on the same event loop (uvloop), and nothing else: the
              ceiling for this machine

Besides wall-clock rates it prints messages per CPU-second of the dispatching process(es)
(and of the bare loop): the steadier figure when other work shares the cores.

With --batch K the channel posts K messages per request (the gateway's batch endpoint,
as Infobip's and Jasmin's HTTP APIs have) and the baseline posts the same batches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_standin import StandinProcess  # noqa: E402

TARGET = 3000  # messages/s


def prepare(url: str, gateway: str, channel_extra: dict[str, Any]) -> None:
    from meterline.runtime import open_runtime
    from meterline.services import credit
    from meterline.services.channel_accounts import add_channel_account
    from meterline.services.tenants import create_tenant
    from meterline.store.migrate import upgrade

    upgrade(url)
    rt = open_runtime(database_url=url)
    with rt.sessions() as s, s.begin():
        t = create_tenant(
            s,
            slug="bench",
            name="Bench Power",
            country="IN",
            currency="INR",
            timezone="Asia/Kolkata",
            languages=["en"],
        )
        add_channel_account(
            s,
            t.id,
            name="gateway",
            type_name="sms_http",
            config={"url": gateway, "body_format": "json", **channel_extra},
            rate_per_second=1_000_000,
        )
        credit.set_pricing(s, t.id, sms_price_minor=20)
        credit.top_up(s, t.id, 10**12, by="bench")
    rt.close()


def enqueue(url: str, n: int) -> None:
    from meterline.runtime import open_runtime
    from meterline.services.notify import Notification, notify_many
    from meterline.store.models import Tenant

    rt = open_runtime(database_url=url)
    with rt.sessions() as s, s.begin():
        t = s.query(Tenant).one()
        notify_many(
            s,
            t,
            (
                Notification(
                    kind="otp",
                    data={"code": f"{i:06d}", "minutes": 5},
                    idempotency_key=f"b{i}",
                    phone=f"98{i:08d}",
                )
                for i in range(n)
            ),
            now=datetime.now(UTC),
        )
    rt.close()


def count_sent(url: str) -> int:
    from sqlalchemy import func, select

    from meterline.runtime import open_runtime
    from meterline.store.models import Message

    rt = open_runtime(database_url=url)
    try:
        with rt.sessions() as s:
            return int(
                s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
                or 0
            )
    finally:
        rt.close()


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_in_process(url: str, n: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (the dispatcher is all it runs)."""
    from meterline.runtime import open_runtime
    from meterline.services.dispatch import Dispatcher, DispatchSettings, drain

    rt = open_runtime(database_url=url)
    start, cpu = time.perf_counter(), time.process_time()
    drain(Dispatcher(rt.sessions, settings=DispatchSettings()), timeout=600)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rt.close()
    assert count_sent(url) == n, "not every message was sent"
    return elapsed, cpu


def run_workers(url: str, n: int, workers: int) -> tuple[float, float]:
    """Workers start first and idle; the clock runs from the moment the messages are
    committed (so process start-up is not counted) until all are sent. Also answers the
    workers' CPU seconds over that time (PostgreSQL's own is not counted)."""
    env = {**os.environ, "METERLINE_DATABASE_URL": url, "METERLINE_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "worker"], env=env, stdout=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(3.0)  # imports and the first idle round
        enqueue(url, n)
        start = time.perf_counter()
        cpu = sum(proc_cpu(p.pid) for p in procs)
        while count_sent(url) < n:
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        return elapsed, sum(proc_cpu(p.pid) for p in procs) - cpu
    finally:
        for p in procs:
            p.terminate()
            p.wait()


async def baseline(gateway: str, n: int, concurrency: int, batch: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        sem = asyncio.Semaphore(concurrency)
        tag = uuid.uuid4().hex[:8]

        def item(i: int) -> dict[str, Any]:
            return {
                "to": f"+9198{i:08d}",
                "text": f"Bench Power: your code is {i:06d}. It expires in 5 minutes.",
                "reference": f"base-{tag}-{i}",
            }

        async def post(i: int) -> None:
            body: Any = (
                item(i)
                if batch == 1
                else {"messages": [item(j) for j in range(i, min(n, i + batch))]}
            )
            async with sem, session.post(gateway, json=body) as resp:
                await resp.read()
                resp.raise_for_status()

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(post(i) for i in range(0, n, batch)))
        return time.perf_counter() - start, time.process_time() - cpu


def pg_schema_url(pg: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from meterline.store.db import normalise_url

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(pg), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(normalise_url(pg)).update_query_dict(
        {"options": f"-csearch_path={schema},public"}
    )
    return url.render_as_string(hide_password=False), schema


def drop_schema(pg: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    from meterline.store.db import normalise_url

    admin = create_engine(normalise_url(pg), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--pg", default=os.environ.get("METERLINE_TEST_PG_URL"))
    parser.add_argument("--batch", type=int, default=1, help="messages per gateway request")
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    n = args.messages
    extra = {"batch_size": args.batch} if args.batch > 1 else {}
    results: list[tuple[str, tuple[float, float]]] = []
    with StandinProcess(port=0, args=["--keep", "0"]) as gw:
        gateway = f"{gw.url}/sms"
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'dispatch.db'}"
            prepare(url, gateway, extra)
            enqueue(url, n)
            results.append(("sqlite, in-process dispatcher", run_in_process(url, n)))
        gw.reset()  # every database numbers its messages from 1: same references
        if args.pg:
            for workers in (1, 2):
                url, schema = pg_schema_url(args.pg)
                try:
                    prepare(url, gateway, extra)
                    results.append(
                        (f"postgresql, {workers} worker process(es)", run_workers(url, n, workers))
                    )
                finally:
                    drop_schema(args.pg, schema)
                gw.reset()
        from meterline.services.dispatch import run_loop

        results.append(  # on the dispatcher's event loop (uvloop), as a fair ceiling
            (
                f"baseline: bare aiohttp loop, {args.concurrency} in flight",
                run_loop(baseline(gateway, n, args.concurrency, args.batch)),
            )
        )
        stats = gw.stats()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {n:,} messages, {args.batch} per request"
    )
    # msg per CPU-second: the client side's own CPU (dispatcher or bare loop), the steadier
    # figure on a shared machine (the stand-in and PostgreSQL are not counted).
    for name, (seconds, cpu) in results:
        rate = n / seconds
        mark = (
            ""
            if name.startswith("baseline")
            else ("  (target 3,000/s " + ("met)" if rate >= TARGET else "NOT met)"))
        )
        print(
            f"{name:45s} {seconds:7.1f} s  {rate:8,.0f} msg/s  "
            f"{cpu:6.1f} CPU-s  {n / cpu:8,.0f} msg/CPU-s{mark}"
        )
    print("stand-in counts:", json.dumps(stats))


if __name__ == "__main__":
    main()
