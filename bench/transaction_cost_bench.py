"""Scenario 5 cost: SQL statements and CPU per confirmation, API side and dispatch side.

    python bench/transaction_cost_bench.py [--n 500] [--clients 8] [--pg URL]

The latency benchmark (transaction_latency_bench.py) shows whether the target holds; this
one shows why, in figures that a shared machine disturbs little: the statements each
confirmation costs and the CPU time of the process per confirmation. It posts N deposits
through the real ASGI application (in this process, `clients` at a time, as uvicorn's
thread pool runs them), then dispatches them to the sms_http stand-in with the real
dispatcher. Baselines: the same client calling `GET /healthz` as many times (what the
HTTP client and the framework cost alone, included in the API figure), and bare
`SELECT 1` round trips on one connection (what one statement costs at the least).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.gateway_standin import StandinProcess  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, *_: object) -> None:
        self.statements += 1


async def health_all(app: object, n: int, clients: int) -> None:
    """The floor: the same client and framework, a route that touches nothing."""
    import httpx

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        limit = asyncio.Semaphore(clients)

        async def one() -> None:
            async with limit:
                (await client.get("/healthz")).raise_for_status()

        await asyncio.gather(*(one() for _ in range(n)))


async def post_all(app: object, key: str, n: int, members: int, clients: int) -> None:
    import httpx

    run = uuid.uuid4().hex[:6]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        limit = asyncio.Semaphore(clients)

        async def one(i: int) -> None:
            async with limit:
                resp = await client.post(
                    "/api/v1/transactions",
                    headers={"X-API-Key": key},
                    json={
                        "account": f"M-{i % members}",
                        "type": "deposit",
                        "amount": "100.00",
                        "reference": f"{run}-{i}",
                    },
                )
                if resp.status_code != 201:
                    raise RuntimeError(f"{resp.status_code}: {resp.text}")

        await asyncio.gather(*(one(i) for i in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL instead of SQLite")
    args = parser.parse_args()

    from sqlalchemy import event, text
    from transaction_latency_bench import prepare

    from meterline.config import Settings
    from meterline.runtime import open_runtime
    from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
    from meterline.web.app import create_app

    with StandinProcess(port=0, args=["--keep", "0"]) as gw, tempfile.TemporaryDirectory() as tmp:
        if args.pg:
            from dispatch_bench import drop_schema, pg_schema_url

            url, schema = pg_schema_url(args.pg)
        else:
            url, schema = f"sqlite:///{Path(tmp) / 'cost.db'}", ""
        try:
            key = prepare(url, f"{gw.url}/sms", args.members)
            settings = Settings(database_url=url, secret_key="bench")  # type: ignore[arg-type]
            rt = open_runtime(settings)
            counter = Counter()
            event.listen(rt.engine, "before_cursor_execute", counter)
            app = create_app(rt)
            asyncio.run(post_all(app, key, 20, args.members, args.clients))  # warm up
            drain(Dispatcher(rt.sessions, settings=DispatchSettings()))

            counter.statements = 0
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(post_all(app, key, args.n, args.members, args.clients))
            api_cpu, api_wall = time.process_time() - cpu, time.perf_counter() - wall
            api_statements = counter.statements

            counter.statements = 0
            cpu = time.process_time()
            report = drain(Dispatcher(rt.sessions, settings=DispatchSettings()))
            send_cpu = time.process_time() - cpu
            send_statements = counter.statements
            assert report.sent == args.n, report

            cpu = time.process_time()
            asyncio.run(health_all(app, args.n, args.clients))
            floor_cpu = time.process_time() - cpu

            counter.statements = 0
            cpu = time.process_time()
            with rt.engine.connect() as conn:
                for _ in range(args.n):
                    conn.execute(text("SELECT 1"))
            base_cpu = time.process_time() - cpu
            rt.close()
        finally:
            if schema and args.pg:
                drop_schema(args.pg, schema)
    n = args.n
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {'postgresql' if args.pg else 'sqlite'};"
        f" {n} deposits, {args.clients} clients"
    )
    print(
        f"API (post -> committed): {api_statements / n:5.1f} statements, "
        f"{api_cpu / n * 1000:5.2f} ms CPU per confirmation; {n / api_wall:6.0f}/s"
    )
    print(
        f"dispatch (claim, send, record): {send_statements / n:5.1f} statements, "
        f"{send_cpu / n * 1000:5.2f} ms CPU per confirmation"
    )
    print(
        f"baselines: GET /healthz through the same client {floor_cpu / n * 1000:5.2f} ms CPU"
        f" per request; a bare SELECT 1 {base_cpu / n * 1000:5.3f} ms CPU per statement"
    )


if __name__ == "__main__":
    main()
