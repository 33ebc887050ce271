"""Scenario 5 latency: POST /api/v1/transactions to the confirmation handed to the provider.

    python bench/transaction_latency_bench.py --rate 100 --seconds 20 [--pg URL]

On SQLite, `meterline serve` (API + in-process dispatcher) runs as its own process; on
PostgreSQL, the production shape of docs/deployment.md: `uvicorn --workers 2` web
processes and one `meterline worker`. The sms_http provider stand-in runs as another
process. Deposits are posted at a steady rate (each to its own member, each with its own
reference). A message's latency is its `sent_at` (written when the provider accepted it)
minus the moment its deposit was posted. The first `--warmup` seconds of posts are not
measured: they make sure every process has started and filled its pools and caches. The
server processes' CPU time over the measured run is printed per confirmation. Baseline:
the same number of bare POSTs to the stand-in at the same rate, their round-trip times.

Target: p99 under 2 s at 100 transactions/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_standin import StandinProcess  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str, gateway: str, members: int) -> str:
    from meterline.domain.enums import Billing, Role, Service, TenantKind
    from meterline.runtime import open_runtime
    from meterline.services import credit
    from meterline.services.channel_accounts import add_channel_account
    from meterline.services.security import create_api_key
    from meterline.services.tenants import create_tenant
    from meterline.store.migrate import upgrade
    from meterline.store.models import Account, Consumer, ContactPoint

    upgrade(url)
    rt = open_runtime(database_url=url)
    with rt.sessions() as s, s.begin():
        t = create_tenant(
            s,
            slug="coop",
            name="Shapla",
            country="BD",
            currency="BDT",
            timezone="Asia/Dhaka",
            kind=TenantKind.cooperative,
            languages=["bn", "en"],
        )
        for i in range(members):
            c = Consumer(tenant_id=t.id, name=f"Member {i}", preferred_language="bn")
            s.add(c)
            s.flush()
            s.add(
                ContactPoint(
                    tenant_id=t.id,
                    consumer_id=c.id,
                    kind="phone",
                    value=f"+8801{700000000 + i:09d}",
                    is_primary=True,
                )
            )
            s.add(
                Account(
                    tenant_id=t.id,
                    consumer_id=c.id,
                    number=f"M-{i}",
                    service=Service.savings,
                    billing=Billing.prepaid,
                    balance_minor=0,
                )
            )
        add_channel_account(
            s,
            t.id,
            name="gateway",
            type_name="sms_http",
            config={"url": gateway, "body_format": "json"},
            rate_per_second=10_000,
        )
        credit.set_pricing(s, t.id, sms_price_minor=35)
        credit.top_up(s, t.id, 10**12, by="bench")
        _, key = create_api_key(s, t, "books", Role.operator)
    rt.close()
    return key


async def paced(rate: float, total: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Start one(i) for i in range(total) at a steady rate, whatever each takes."""
    t0 = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


async def post_deposits(
    base: str, key: str, rate: float, total: int, members: int
) -> tuple[dict[str, float], list[float]]:
    import aiohttp

    posted: dict[str, float] = {}
    answer_times: list[float] = []
    run = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:

        async def one(i: int) -> None:
            ref = f"{run}-{i}"
            started = time.time()
            posted[ref] = started
            async with session.post(
                f"{base}/api/v1/transactions",
                json={
                    "account": f"M-{i % members}",
                    "type": "deposit",
                    "amount": "100.00",
                    "reference": ref,
                },
            ) as resp:
                await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")
            answer_times.append(time.time() - started)

        await paced(rate, total, one)
    return posted, answer_times


async def baseline(gateway: str, rate: float, total: int) -> list[float]:
    import aiohttp

    times: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            started = time.perf_counter()
            async with session.post(
                gateway,
                json={"to": f"+8801{700000000 + i:09d}", "text": "baseline", "reference": f"x{i}"},
            ) as resp:
                await resp.read()
            times.append(time.perf_counter() - started)

        await paced(rate, total, one)
    return times


def sent_times(url: str) -> dict[str, float]:
    from sqlalchemy import select

    from meterline.runtime import open_runtime
    from meterline.store.models import Message

    rt = open_runtime(database_url=url)
    try:
        with rt.sessions() as s:
            rows = s.execute(
                select(Message.idempotency_key, Message.sent_at).where(Message.sent_at.is_not(None))
            ).all()
        return {key.removeprefix("txn:"): at.timestamp() for key, at in rows}
    finally:
        rt.close()


def cpu_seconds(root_pids: list[int]) -> float:
    """User + system CPU of these processes and all their descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = int(fields[11]) + int(fields[12])
    wanted = set(root_pids)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in wanted} - wanted
        grew = bool(more)
        wanted |= more
    return sum(used.get(pid, 0) for pid in wanted) / ticks


def started(log: Path) -> int:
    """How many uvicorn processes have finished starting, from its log."""
    return log.read_text(errors="replace").count("Application startup complete")


def wait_sent(url: str, count: int, timeout: float = 60.0) -> dict[str, float]:
    deadline = time.time() + timeout
    sent = sent_times(url)
    while len(sent) < count and time.time() < deadline:
        time.sleep(0.2)
        sent = sent_times(url)
    return sent


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unmeasured posts first"
    )
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL instead of SQLite")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn workers (PostgreSQL)")
    args = parser.parse_args()
    total = int(args.rate * args.seconds)
    with StandinProcess(port=0, args=["--keep", "0"]) as gw, tempfile.TemporaryDirectory() as tmp:
        gateway = f"{gw.url}/sms"
        if args.pg:
            sys.path.insert(0, str(ROOT / "bench"))
            from dispatch_bench import drop_schema, pg_schema_url

            url, schema = pg_schema_url(args.pg)
        else:
            url, schema = f"sqlite:///{Path(tmp) / 'txn.db'}", ""
        try:
            key = prepare(url, gateway, args.members)
            port = free_port()
            env = {
                **os.environ,
                "METERLINE_DATABASE_URL": url,
                "METERLINE_LOG_LEVEL": "WARNING",
                "METERLINE_SECRET_KEY": uuid.uuid4().hex,
            }
            if args.pg:
                # The documented production shape: web processes without a dispatcher,
                # dispatch in its own worker process.
                commands = [
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "meterline.web.asgi:create",
                        "--port",
                        str(port),
                        "--workers",
                        str(args.web_workers),
                        "--log-level",
                        "info",  # each worker says when it has started (see below)
                    ],
                    [sys.executable, "-m", "meterline.cli", "worker"],
                ]
            else:  # the embedded shape: one process, dispatcher in a thread
                commands = [[sys.executable, "-m", "meterline.cli", "serve", "--port", str(port)]]
            web_log = Path(tmp) / "web.log"
            with web_log.open("w") as log_file:
                servers = [
                    subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
                    for c in commands
                ]
            base = f"http://127.0.0.1:{port}"
            try:
                import httpx

                for _ in range(200):
                    try:
                        if httpx.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.05)
                # /healthz answers as soon as one web worker is up; wait for all of them.
                wanted = args.web_workers if args.pg else 1
                deadline = time.time() + 120
                while started(web_log) < wanted and time.time() < deadline:
                    time.sleep(0.2)
                # Warm-up, not measured: every process started (a second web worker or
                # the dispatch worker may still be importing when /healthz first
                # answers), pools and caches filled.
                warm = int(args.rate * args.warmup)
                asyncio.run(post_deposits(base, key, args.rate, warm, args.members))
                wait_sent(url, warm)
                cpu_before = cpu_seconds([s.pid for s in servers])
                posted, answers = asyncio.run(
                    post_deposits(base, key, args.rate, total, args.members)
                )
                sent = wait_sent(url, warm + total)
                server_cpu = cpu_seconds([s.pid for s in servers]) - cpu_before
                # A worker that misses uvicorn's health check (5 s) is killed and started
                # again: on a starved machine that, not our code, would be the latency.
                restarts = started(web_log) - wanted
            finally:
                for server in servers:
                    server.terminate()
                    server.wait()
            base_times = asyncio.run(baseline(gateway, args.rate, total))
        finally:
            if schema and args.pg:
                drop_schema(args.pg, schema)
    latencies = [sent[ref] - at for ref, at in posted.items() if ref in sent]
    backend = (
        f"postgresql, {args.web_workers} web processes + 1 dispatch worker"
        if args.pg
        else "sqlite, `meterline serve` (dispatcher in-process)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {backend}; {total} deposits at {args.rate:.0f}/s"
    )
    print(
        f"API answer      : p50 {pct(answers, 50) * 1000:7.1f} ms  "
        f"p99 {pct(answers, 99) * 1000:7.1f} ms"
    )
    print(
        f"post -> sent    : p50 {pct(latencies, 50) * 1000:7.1f} ms  "
        f"p99 {pct(latencies, 99) * 1000:7.1f} ms  ({len(latencies)}/{total} sent;"
        f" target p99 < 2000 ms: {'met' if pct(latencies, 99) < 2 else 'NOT met'})"
    )
    if restarts:
        print(f"WARNING: {restarts} web worker restart(s) during the run (missed health checks)")
    print(
        f"server CPU      : {server_cpu / total * 1000:7.2f} ms per confirmation"
        f" (web + dispatch processes, {server_cpu:.1f} s in all)"
    )
    print(
        f"baseline (bare POST to the stand-in): p50 {pct(base_times, 50) * 1000:7.1f} ms  "
        f"p99 {pct(base_times, 99) * 1000:7.1f} ms"
    )
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
