"""Smart-meter event ingest: sustained throughput over HTTP and MQTT, and alert latency.

    python bench/events_bench.py --meters 1000000 --events 1000000 [--pg URL] [--mqtt URL]
    python bench/events_bench.py --meters 10000 --events 100000 --latency-seconds 10  # quick
    python bench/events_bench.py --meters 1000000 --fleet-cache /tmp/fleet1m.db  # built once

--fleet-cache FILE (SQLite): the first run builds the fleet and keeps a copy of its
database in FILE; later runs with the same --meters copy it instead of building it again
(a million meters take one to four minutes), so every run starts from the same state.

For each database (SQLite, and PostgreSQL with --pg) a fresh database gets a tenant with
a sandbox SMS channel and credit, and a prepaid fleet of --meters meters (consumers,
accounts with sanctioned loads, meters: `services.fleet.create_fleet`, not timed). The
fleet simulator then produces --events events (demand, balance, readings, tamper, relay,
... in the wire format; times in the last hour so every rule runs and alerts are sent),
cut into NDJSON batches of --batch events before the clock starts. The stream is a
steady state (balances start healthy; alerts come from consumption): --cold starts from
the stored opening balances instead, ~5 % of which are under the threshold and alert on
their first report. Timed, each run ends
when the database has every event (rules evaluated, states, usage, alerts and their
messages written):

  http        batches POSTed to /api/v1/events of a real server process: `meterline
              serve --no-dispatcher --workers N` on SQLite (--sqlite-workers, 1);
              `uvicorn --workers N` on PostgreSQL (--web-workers, 2)
  mqtt        the same number of events (the stream continued: every meter has a state
              by now) published with QoS 1 to Mosquitto, one batch per message, taken by
              `meterline ingest` workers in one shared group (--sqlite-workers on SQLite,
              1; --ingest-workers on PostgreSQL, 2)
  baseline    the raw write of the same events, nothing else: each NDJSON line parsed and
              its meter, type, time and body written to a bare table (executemany in one
              transaction per batch on SQLite, COPY on PostgreSQL), in this process

Latency (--latency-seconds, MQTT): the simulator's stream at --latency-rate events/s
(5,000 by default), paced in 20 ms slices, with --probes events a second (10) mixed in: each
probe drives a meter of its own below zero (an urgent alert, sent at once whatever the
hour). A probe's latency runs from the moment its message was handed to the broker to
the moment its alert's message is visible in the database (committed, ready for the
dispatcher), as a poller in this process sees it every 10 ms.

Beside each rate: events per CPU-second of the ingesting processes (server or workers,
from /proc during the run; the baseline's is this process's), which a busy machine disturbs
least; on PostgreSQL also the CPU of the server processes that served them (their
connections carry the run's application_name), and the peak resident memory of an
ingesting process. Targets: 50,000 events/s sustained; alert latency p99 under 1 s at
5,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TARGET = 50_000  # events/s
TARGET_P99 = 1.0  # s
PREFIX = "BM"
TENANT = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str, meters: int) -> tuple[str, float]:
    """Schema, tenant, channel, credit, fleet, API key; returns (key, fleet seconds)."""
    from meterline.domain.enums import Role
    from meterline.runtime import open_runtime
    from meterline.services import credit
    from meterline.services.channel_accounts import add_channel_account
    from meterline.services.fleet import create_fleet
    from meterline.services.security import create_api_key
    from meterline.services.tenants import create_tenant
    from meterline.store.migrate import upgrade

    upgrade(url)
    rt = open_runtime(database_url=url)
    try:
        with rt.sessions() as s, s.begin():
            t = create_tenant(
                s,
                slug=TENANT,
                name="Bench Power",
                country="IN",
                currency="INR",
                timezone="Asia/Kolkata",
                languages=["hi", "en"],
            )
            add_channel_account(
                s, t.id, name="sandbox", type_name="sandbox", config={}, rate_per_second=1000
            )
            credit.set_pricing(s, t.id, sms_price_minor=20)
            credit.top_up(s, t.id, 10**12, by="bench")
            _, key = create_api_key(s, t, "bench", Role.operator)
        report = create_fleet(rt.sessions, TENANT, meters, prefix=PREFIX, batch_size=10_000)
    finally:
        rt.close()
    return key, report.seconds


@dataclass
class Stream:
    """The simulator, continued across the runs of one database."""

    sim: Any
    start: datetime
    made: int = 0

    def batches(self, total: int, batch: int, span: timedelta) -> list[bytes]:
        """`total` events as NDJSON batches, stamped evenly over `span` after the last."""
        from meterline.ingest.simulator import as_ndjson

        out = []
        step = span / max(1, total // batch)
        for lo in range(0, total, batch):
            now = self.start + step * (self.made // batch)
            out.append(as_ndjson(self.sim.take(now, min(batch, total - lo))))
            self.made += min(batch, total - lo)
        return out


def new_stream(meters: int, probes: int, cold: bool, seed: int = 1) -> Stream:
    """The fleet's stream. Unless `cold`, every meter starts 300.00 above its stored opening
    balance: a steady state, where crossings come from consumption (and the probes), not
    from the ~5 % of opening balances under the threshold alerting on their first report
    (a cold start: each alert is a message queued in the same transaction)."""
    from dataclasses import replace

    from meterline.ingest.simulator import FleetSimulator, SimSettings, demo_meters

    fleet = demo_meters(meters - probes, prefix=PREFIX, tenant=TENANT)
    if not cold:
        fleet = [replace(m, initial_balance_minor=m.initial_balance_minor + 300_00) for m in fleet]
    sim = FleetSimulator(fleet, random.Random(seed), SimSettings(silent_share=0.0))
    return Stream(sim, datetime.now(UTC) - timedelta(minutes=90))


def processed(url: str, rt: Any = None) -> int:
    """Events the service has dealt with (accepted, duplicate, rejected, unknown)."""
    from sqlalchemy import func, select

    from meterline.runtime import open_runtime
    from meterline.store.models import MeterEventBatch as B

    own = rt is None
    rt = rt or open_runtime(database_url=url)
    try:
        with rt.reader() as s:
            total = s.scalar(
                select(
                    func.coalesce(func.sum(B.accepted + B.duplicates + B.rejected + B.unknown), 0)
                )
            )
            return int(total or 0)
    finally:
        if own:
            rt.close()


def counts(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from meterline.runtime import open_runtime
    from meterline.store.models import Message, MeterAlert, MeterEventBatch, MeterState

    rt = open_runtime(database_url=url)
    try:
        with rt.reader() as s:
            return {
                "states": s.scalar(select(func.count()).select_from(MeterState)) or 0,
                "alerts": s.scalar(select(func.count()).select_from(MeterAlert)) or 0,
                "messages": s.scalar(select(func.count()).select_from(Message)) or 0,
                "rejected": s.scalar(select(func.sum(MeterEventBatch.rejected))) or 0,
                "unknown": s.scalar(select(func.sum(MeterEventBatch.unknown))) or 0,
            }
    finally:
        rt.close()


def server_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "METERLINE_DATABASE_URL": url,
        "METERLINE_LOG_LEVEL": "WARNING",
        "METERLINE_SECRET_KEY": uuid.uuid4().hex,
    }


def start_http(url: str, pg: bool, web_workers: int) -> tuple[list[subprocess.Popen[bytes]], str]:
    import httpx

    port = free_port()
    if pg:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "meterline.web.asgi:create",
            "--port",
            str(port),
            "--workers",
            str(web_workers),
            "--log-level",
            "warning",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "meterline.cli",
            "serve",
            "--port",
            str(port),
            "--no-dispatcher",
            "--workers",
            str(web_workers),
        ]
    procs = [
        subprocess.Popen(
            cmd, env=server_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    ]
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return procs, base


async def post_all(base: str, key: str, batches: list[bytes], concurrency: int) -> float:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    queue = list(reversed(batches))
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def lane() -> None:
            while queue:
                body = queue.pop()
                async with session.post(f"{base}/api/v1/events", data=body) as resp:
                    text = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}: {text[:300]!r}")

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - start


def tree_pids(procs: list[Any]) -> list[int]:
    """These processes and their children (uvicorn's and `serve --workers`' workers)."""
    out, todo = [], [p.pid for p in procs]
    while todo:
        pid = todo.pop()
        try:
            todo.extend(
                int(c)
                for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()
            )
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.append(pid)
    return out


def peak_rss_mb(procs: list[Any]) -> float:
    """The largest peak resident size (VmHWM) among these processes and their children."""
    peak = 0
    for pid in tree_pids(procs):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return peak / 1024


PEAKS: dict[str, float] = {}  # run -> peak resident MB of one ingesting process


def tree_cpu(procs: list[Any]) -> float:
    """CPU seconds so far of these processes and their children (uvicorn's workers), from
    /proc: taken after start-up and before the stop, imports and shutdown are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [p.pid for p in procs]
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            pids.extend(
                int(c)
                for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()
            )
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class BackendCpu:
    """CPU seconds of the PostgreSQL server processes that serve our ingesting processes
    (their connections carry this run's application_name; the server runs on this
    machine, so /proc has them). Other clients of the same server are left out."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.name = f"mlbench{uuid.uuid4().hex[:8]}"
        self.url = url
        self.tagged = (
            make_url(url)
            .update_query_dict({"application_name": self.name})
            .render_as_string(hide_password=False)
        )
        self.start: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        from sqlalchemy import text

        from meterline.runtime import open_runtime

        rt = open_runtime(database_url=self.url)
        try:
            with rt.engine.connect() as conn:
                pids = conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": self.name},
                ).scalars()
                out = {}
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except FileNotFoundError:
                        continue
                    out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                return out
        finally:
            rt.close()

    def begin(self) -> None:
        self.start = self._now()

    def seconds(self) -> float:
        """Since `begin`: backends that appeared meanwhile count from zero (the pools
        keep their connections, so few come and go)."""
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self._now().items())


SERVER_CPU: dict[str, float] = {}  # run -> PostgreSQL server CPU seconds


def run_http(
    url: str, key: str, batches: list[bytes], pg: bool, web_workers: int
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the server processes)."""
    backends = BackendCpu(url) if pg else None
    procs, base = start_http(backends.tagged if backends else url, pg, web_workers)
    try:
        # Every worker's pool holds a connection once it served a request: warm them up.
        warm = batches[: 2 * web_workers]
        asyncio.run(post_all(base, key, [b[: b.index(b"\n") + 1] for b in warm], 2 * web_workers))
        if backends:
            backends.begin()
        cpu = tree_cpu(procs)
        seconds = asyncio.run(post_all(base, key, batches, concurrency=2 * web_workers))
        cpu = tree_cpu(procs) - cpu
        if backends:
            SERVER_CPU["http"] = backends.seconds()
        PEAKS["http"] = peak_rss_mb(procs)
    finally:
        stop_all(procs)
    return seconds, cpu


def start_ingest(url: str, mqtt: str, root: str, workers: int) -> list[subprocess.Popen[str]]:
    group = f"g{uuid.uuid4().hex[:8]}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meterline.cli",
                "ingest",
                "--mqtt",
                mqtt,
                "--topic",
                f"{root}/+/events",
                "--group",
                group,
                "--client-id",
                f"{group}-{i}",
            ],
            env={**server_env(url), "METERLINE_LOG_LEVEL": "INFO"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    for p in procs:  # each logs "subscribed" once its shared subscription is in place
        assert p.stderr is not None
        line = ""
        while "subscribed" not in line:
            line = p.stderr.readline()
            if not line and p.poll() is not None:
                raise RuntimeError("meterline ingest exited")
        threading.Thread(target=p.stderr.read, daemon=True).start()  # keep the pipe drained
    return procs


def stop_all(procs: list[Any]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


async def publish_all(mqtt: str, topic: str, payloads: list[bytes], inflight: int = 64) -> None:
    from meterline.ingest.sim_send import mqtt_client

    async with mqtt_client(mqtt, f"bench-pub-{uuid.uuid4().hex[:8]}") as client:
        slots = asyncio.Semaphore(inflight)

        async def one(p: bytes) -> None:
            async with slots:
                await client.publish(topic, p, qos=1)

        await asyncio.gather(*(one(p) for p in payloads))


def wait_processed(url: str, total: int, timeout: float = 3600) -> None:
    from meterline.runtime import open_runtime

    rt = open_runtime(database_url=url)  # one engine for the polling, not one a poll
    try:
        deadline = time.monotonic() + timeout
        while (done := processed(url, rt)) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {total} events processed")
            time.sleep(0.05)
    finally:
        rt.close()


def run_mqtt(
    url: str, mqtt: str, batches: list[bytes], workers: int, already: int
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the ingest workers)."""
    root = f"bench{uuid.uuid4().hex[:8]}"
    backends = BackendCpu(url) if url.startswith("postgresql") else None
    procs = start_ingest(backends.tagged if backends else url, mqtt, root, workers)
    try:
        if backends:
            backends.begin()
        cpu = tree_cpu(procs)
        total = already + sum(b.count(b"\n") for b in batches)
        start = time.perf_counter()
        asyncio.run(publish_all(mqtt, f"{root}/{TENANT}/events", batches))
        wait_processed(url, total)
        seconds = time.perf_counter() - start
        cpu = tree_cpu(procs) - cpu
        if backends:
            SERVER_CPU["mqtt"] = backends.seconds()
        PEAKS["mqtt"] = peak_rss_mb(procs)
    finally:
        stop_all(procs)
    return seconds, cpu


def raw_baseline(url: str, batches: list[bytes]) -> float:
    """Parse each line and write meter, type, time and body to a bare table."""
    from sqlalchemy.engine import make_url

    pg = url.startswith("postgresql")
    if pg:
        import psycopg

        from meterline.store.db import normalise_url

        u = make_url(normalise_url(url))
        options = u.query.get("options")  # the schema's search_path
        conn: Any = psycopg.connect(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            dbname=u.database,
            options=options if isinstance(options, str) else None,
        )
        conn.execute("CREATE TABLE raw_events (meter text, type text, at text, body text)")
        conn.commit()
    else:
        conn = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE raw_events (meter TEXT, type TEXT, at TEXT, body TEXT)")
    start = time.perf_counter()
    for body in batches:
        rows = []
        for line in body.splitlines():
            e = json.loads(line)
            rows.append((e["meter"], e["type"], e["at"], line.decode()))
        if pg:
            with conn.cursor() as cur, cur.copy("COPY raw_events FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        else:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO raw_events VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


# ---- latency -------------------------------------------------------------------------


def probe_event(meter: int, at: datetime) -> dict[str, Any]:
    from meterline.domain.demo_fleet import fleet_serial

    return {
        "type": "balance",
        "meter": fleet_serial(PREFIX, meter),
        "at": at.isoformat(timespec="milliseconds"),
        "balance": -5_00,
        "id": f"probe-{meter}",
    }


class MessagePoller(threading.Thread):
    """Notes when each new message (by account number) first becomes visible."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import func, select

        from meterline.runtime import open_runtime
        from meterline.store.models import Account, Message

        rt = open_runtime(database_url=self.url)
        with rt.reader() as s:
            last = s.scalar(select(func.coalesce(func.max(Message.id), 0))) or 0
        while not self.stop.is_set():
            with rt.reader() as s:
                rows = s.execute(
                    select(Message.id, Account.number)
                    .join(Account, Account.id == Message.account_id)
                    .where(Message.id > last)
                    .order_by(Message.id)
                ).all()
            now = time.time()
            for mid, number in rows:
                self.seen.setdefault(number, now)
                last = max(last, mid)
            time.sleep(0.01)
        rt.close()


async def publish_paced(
    mqtt: str,
    topic: str,
    stream: Stream,
    rate: float,
    seconds: float,
    probes: list[int],
    probes_per_s: float,
) -> dict[str, float]:
    """`rate` events/s in 20 ms slices with probe events mixed in; returns publish times."""
    from meterline.domain.demo_fleet import fleet_account
    from meterline.ingest.sim_send import mqtt_client

    sent: dict[str, float] = {}
    per_slice = max(1, round(rate * 0.02))
    probe_every = max(1, round(1 / (probes_per_s * 0.02)))
    tasks = []
    async with mqtt_client(mqtt, f"bench-lat-{uuid.uuid4().hex[:8]}") as client:
        t0 = time.perf_counter()
        k = 0
        while time.perf_counter() - t0 < seconds:
            now = datetime.now(UTC)
            events = stream.sim.take(now, per_slice)
            probe = None
            if k % probe_every == 0 and probes:
                probe = probes.pop()
                events.append(probe_event(probe, now))
            payload = b"".join(json.dumps(e).encode() + b"\n" for e in events)
            if probe is not None:
                sent[fleet_account(PREFIX, probe)] = time.time()
            tasks.append(asyncio.create_task(client.publish(topic, payload, qos=1)))
            k += 1
            delay = t0 + k * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)
    return sent


def run_latency(
    url: str,
    mqtt: str,
    stream: Stream,
    meters: int,
    probes: int,
    rate: float,
    seconds: float,
    workers: int,
    probes_per_s: float,
) -> tuple[list[float], int, int]:
    root = f"lat{uuid.uuid4().hex[:8]}"
    procs = start_ingest(url, mqtt, root, workers)
    poller = MessagePoller(url)
    poller.start()
    try:
        probe_ids = list(range(meters - probes, meters))
        sent = asyncio.run(
            publish_paced(
                mqtt, f"{root}/{TENANT}/events", stream, rate, seconds, probe_ids, probes_per_s
            )
        )
        deadline = time.time() + 60
        while time.time() < deadline and not all(a in poller.seen for a in sent):
            time.sleep(0.05)
    finally:
        poller.stop.set()
        poller.join()
        stop_all(procs)
    latencies = sorted(poller.seen[a] - t for a, t in sent.items() if a in poller.seen)
    return latencies, len(sent), len(latencies)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def _sqlite_file(url: str) -> Path:
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "")


def keep_fleet(url: str, key: str, meters: int, cache: Path) -> None:
    """Copy the just-built SQLite fleet database (WAL folded in) and its API key to
    `cache`, so later runs start from the very same state without building it again."""
    db = _sqlite_file(url)
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, cache)
    Path(f"{cache}.json").write_text(json.dumps({"key": key, "meters": meters}))


def reuse_fleet(cache: Path, url: str, meters: int) -> str:
    """A copy of the cached fleet database as this run's database; returns its API key."""
    kept = json.loads(Path(f"{cache}.json").read_text())
    if kept["meters"] != meters:
        raise SystemExit(f"{cache} holds {kept['meters']:,} meters, not {meters:,}")
    shutil.copyfile(cache, _sqlite_file(url))
    return str(kept["key"])


def fleet(url: str, meters: int, cache: Path | None) -> tuple[str, float | None]:
    """The fleet's API key, and the seconds it took to build (None: copied from `cache`,
    which a fresh build fills when given)."""
    if cache is not None and cache.exists():
        return reuse_fleet(cache, url, meters), None
    key, seconds = prepare(url, meters)
    if cache is not None:
        keep_fleet(url, key, meters, cache)
    return key, seconds


def bench_database(args: argparse.Namespace, url: str, pg: bool) -> Iterator[str]:
    name = "postgresql" if pg else "sqlite"
    probes = int(args.probes * args.latency_seconds) + 50 if args.mqtt else 0
    fleet_cpu = time.process_time()
    cache = None if pg or not args.fleet_cache else Path(args.fleet_cache)
    key, fleet_s = fleet(url, args.meters, cache)
    fleet_cpu = time.process_time() - fleet_cpu
    if fleet_s is None:
        yield f"[{name}] fleet of {args.meters:,} meters copied from {cache} (not timed)"
    else:
        yield (
            f"[{name}] fleet of {args.meters:,} meters created in {fleet_s:.1f} s"
            f" ({fleet_cpu:.1f} CPU-s in this process with the schema; not timed)"
        )
    stream = new_stream(args.meters, probes, args.cold)
    span = timedelta(minutes=30)
    web_workers = args.web_workers if pg else args.sqlite_workers
    ingest_workers = args.ingest_workers if pg else args.sqlite_workers

    batches = stream.batches(args.events, args.batch, span)
    n = sum(b.count(b"\n") for b in batches)
    # This process holds the simulator's meters and every batch (about 1 GB at a million
    # meters): out of the collector's way, so that no full collection stalls a timed run.
    gc.collect()
    gc.freeze()
    if "http" in args.runs:
        seconds, cpu = run_http(url, key, batches, pg, web_workers)
        wait_processed(url, n)
        shape = f"uvicorn x{web_workers}" if pg else f"meterline serve x{web_workers}"
        yield (result(f"[{name}] http ({shape})", n, seconds, cpu))
        if "http" in SERVER_CPU:
            yield server_line(name, "http", n)
    done = processed(url)
    if args.mqtt and "mqtt" in args.runs:
        mq_batches = stream.batches(args.events, args.batch, span)
        seconds, cpu = run_mqtt(url, args.mqtt, mq_batches, ingest_workers, done)
        yield (result(f"[{name}] mqtt (meterline ingest x{ingest_workers})", n, seconds, cpu))
        if "mqtt" in SERVER_CPU:
            yield server_line(name, "mqtt", n)
    c = counts(url)
    yield (
        f"[{name}] stored: {c['states']:,} meter states, {c['alerts']:,} alert episodes,"
        f" {c['messages']:,} messages queued; {c['rejected']} rejected, {c['unknown']} unknown"
    )
    peaks = ", ".join(f"{run} {mb:,.0f} MB" for run, mb in PEAKS.items())
    yield (
        f"[{name}] peak resident memory: one ingesting process {peaks or '-'};"
        f" this bench process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )
    PEAKS.clear()
    cpu = time.process_time()
    seconds = raw_baseline(url, batches)
    yield (
        result(
            f"[{name}] baseline: raw {'COPY' if pg else 'executemany'}",
            n,
            seconds,
            time.process_time() - cpu,
        )
    )
    if args.mqtt and args.latency_seconds > 0:
        lat, sent, seen = run_latency(
            url,
            args.mqtt,
            stream,
            args.meters,
            probes,
            args.latency_rate,
            args.latency_seconds,
            ingest_workers,
            args.probes,
        )
        ok = "met" if lat and pct(lat, 99) < TARGET_P99 else "NOT met"
        yield (
            f"[{name}] latency at {args.latency_rate:,.0f} events/s over MQTT ({args.probes:g}"
            " probe alerts/s), published ->"
            f" alert message visible: p50 {pct(lat, 50) * 1000:,.0f} ms, p99"
            f" {pct(lat, 99) * 1000:,.0f} ms ({seen}/{sent} probes; target p99 < 1 s: {ok})"
        )


def server_line(name: str, run: str, n: int) -> str:
    cpu = SERVER_CPU.pop(run)
    return (
        f"[{name}]   {run}: PostgreSQL server processes {cpu:.1f} CPU-s,"
        f" {cpu / n * 1e6:.1f} µs an event ({n / cpu:,.0f} events per server CPU-second)"
    )


def result(name: str, n: int, seconds: float, cpu: float) -> str:
    """Wall-clock rate (the target), and events per CPU-second of the ingesting
    processes: the figure a busy shared machine disturbs least."""
    rate = n / seconds
    mark = (
        ""
        if "baseline" in name
        else f"  (target {TARGET:,}/s " + ("met)" if rate >= TARGET else "NOT met)")
    )
    per_cpu = f"{n / cpu:>9,.0f}/cpu-s" if cpu > 0 else ""
    return f"{name:46s} {n:>9,} events {seconds:7.1f} s {rate:>8,.0f}/s {per_cpu}{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000, help="per run")
    parser.add_argument("--batch", type=int, default=5000, help="events per request/message")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (also runs SQLite)")
    parser.add_argument("--no-sqlite", action="store_true", help="with --pg: PostgreSQL only")
    parser.add_argument("--mqtt", default=os.environ.get("METERLINE_TEST_MQTT_URL"))
    parser.add_argument("--runs", default="http,mqtt", help="which ingest paths to time")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn workers (PostgreSQL)")
    parser.add_argument("--ingest-workers", type=int, default=2, help="MQTT workers (PostgreSQL)")
    parser.add_argument(
        "--sqlite-workers",
        type=int,
        default=1,
        help="SQLite: web processes (`meterline serve --workers N`) and MQTT ingest workers",
    )
    parser.add_argument("--latency-rate", type=float, default=5000.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="0: skip")
    parser.add_argument("--probes", type=float, default=10.0, help="probe alerts a second")
    parser.add_argument(
        "--fleet-cache",
        default=None,
        help="SQLite: a file keeping the built fleet database (built and kept if missing,"
        " else copied for this run; the same --meters each time)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="opening balances as stored: ~5%% alert at once"
    )
    args = parser.parse_args()
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}; {args.meters:,} meters, {args.events:,} events a run"
        f" in batches of {args.batch:,}; at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    ]
    print(lines[0], flush=True)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            for line in bench_database(args, f"sqlite:///{Path(tmp) / 'events.db'}", pg=False):
                print(line, flush=True)
    if args.pg:
        from dispatch_bench import drop_schema, pg_schema_url

        url, schema = pg_schema_url(args.pg)
        try:
            for line in bench_database(args, url, pg=True):
                print(line, flush=True)
        finally:
            drop_schema(args.pg, schema)


if __name__ == "__main__":
    main()
