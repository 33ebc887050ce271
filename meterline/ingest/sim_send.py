"""Shipping the simulator's events at a steady rate: over HTTP or to an MQTT broker.

The pacer asks the simulator for what is due every tick (rate x elapsed - already sent)
and hands it out in batches; at most `concurrency` batches are in flight, so a slow
receiver shows up as an achieved rate below the target instead of an unbounded queue.

HTTP: NDJSON batches to `POST /api/v1/events` with the API key. MQTT: QoS 1 publishes to
`meterline/{tenant}/events` (one JSON array per batch, or one event per message with
`batch=1`), each awaited until the broker's PUBACK.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from meterline.ingest.simulator import FleetSimulator, as_ndjson

DEFAULT_TOPIC = "meterline/{tenant}/events"
TICK_S = 0.02


@dataclass
class SendStats:
    sent: int = 0  # events handed to the transport and acknowledged by it
    rejected: int = 0  # events the receiver refused (its reasons in `samples`)
    failed: int = 0  # events in batches that never got through (transport errors)
    batches: int = 0
    seconds: float = 0.0
    samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def note(self, text: str) -> None:
        if len(self.samples) < 20:
            self.samples.append(text)

    def summary(self) -> str:
        line = (
            f"sent {self.sent} events in {self.seconds:.1f} s ({self.rate:,.0f} events/s,"
            f" {self.batches} batches); rejected {self.rejected}; failed {self.failed}"
        )
        return "\n".join([line, *(f"  {s}" for s in self.samples)])


Ship = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def pace(
    sim: FleetSimulator,
    ship: Ship,
    stats: SendStats,
    *,
    rate: float,
    seconds: float | None,
    batch: int,
    concurrency: int,
    stop: asyncio.Event | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> SendStats:
    """Run until `seconds` have passed or `stop` is set; fills and returns `stats`."""
    if rate <= 0:
        raise ValueError("rate must be above zero")
    stop = stop or asyncio.Event()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(events: list[dict[str, Any]]) -> None:
        try:
            await ship(events)
        except Exception as exc:  # the transport's failure: counted, the run goes on
            stats.failed += len(events)
            stats.note(f"{type(exc).__name__}: {exc}")
        finally:
            slots.release()

    start = monotonic()
    handed = 0
    while not stop.is_set():
        elapsed = monotonic() - start
        if seconds is not None and elapsed >= seconds:
            break
        due = int(rate * elapsed) - handed
        while due > 0 and not stop.is_set():
            n = min(due, batch)
            events = sim.take(now(), n)
            if not events:
                stop.set()  # nothing left to say (every meter silent)
                break
            await slots.acquire()
            task = asyncio.create_task(one(events))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            handed += len(events)
            due -= len(events)
        await asyncio.sleep(TICK_S)
    if tasks:
        await asyncio.gather(*tasks)
    stats.seconds = monotonic() - start
    return stats


def http_shipper(url: str, api_key: str, stats: SendStats, session: Any) -> Ship:
    """NDJSON batches to `url` (the events endpoint) through an aiohttp session."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/x-ndjson"}

    async def ship(events: list[dict[str, Any]]) -> None:
        async with session.post(url, data=as_ndjson(events), headers=headers) as resp:
            body = await resp.read()
            stats.batches += 1
            if resp.status >= 400:
                stats.failed += len(events)
                stats.note(f"HTTP {resp.status}: {body[:300].decode(errors='replace')}")
                return
            refused, reasons = refusals_in(body)
            stats.rejected += refused
            stats.sent += len(events)
            for r in reasons[:3]:
                stats.note(f"rejected: {r}")

    return ship


def refusals_in(body: bytes) -> tuple[int, list[str]]:
    """Refused events in an answer of `POST /api/v1/events`: rejected lines (with their
    reasons) and events for serials the tenant has no meter for."""
    try:
        answer = json.loads(body)
    except ValueError:
        return 0, []
    if not isinstance(answer, dict):
        return 0, []
    count = int(answer.get("rejected") or 0) + int(answer.get("unknown_meters") or 0)
    reasons = [
        f"line {e.get('line')}: {e.get('reason')}"
        for e in answer.get("errors") or []
        if isinstance(e, dict)
    ]
    if answer.get("unknown_serials"):
        reasons.append("unknown meters: " + ", ".join(map(str, answer["unknown_serials"][:5])))
    return count, reasons


def events_url(base: str) -> str:
    """`http://host:8000` or the full endpoint URL."""
    base = base.rstrip("/")
    return base if base.endswith("/api/v1/events") else base + "/api/v1/events"


async def send_http(
    sim: FleetSimulator,
    url: str,
    api_key: str,
    *,
    rate: float,
    seconds: float | None,
    batch: int = 500,
    concurrency: int = 8,
    stop: asyncio.Event | None = None,
) -> SendStats:
    import aiohttp

    stats = SendStats()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        ship = http_shipper(events_url(url), api_key, stats, session)
        return await pace(
            sim,
            ship,
            stats,
            rate=rate,
            seconds=seconds,
            batch=batch,
            concurrency=concurrency,
            stop=stop,
        )


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def broker_address(url: str) -> BrokerAddress:
    """mqtt://[user:pass@]host[:port] or mqtts://...; a clear error for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"MQTT URL {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=parts.username,
        password=parts.password,
        tls=tls,
    )


def mqtt_client(url: str, identifier: str | None = None, **kwargs: Any) -> Any:
    """An aiomqtt client for the broker at `url`, speaking MQTT 5."""
    import ssl

    import aiomqtt

    addr = broker_address(url)
    client = aiomqtt.Client(
        addr.host,
        addr.port,
        username=addr.username,
        password=addr.password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=ssl.create_default_context() if addr.tls else None,
        **kwargs,
    )
    # Many publishes in flight is the point of a paced sender: no warning per call.
    client.pending_calls_threshold = 1_000_000
    return client


async def send_mqtt(
    sim: FleetSimulator,
    url: str,
    tenant: str,
    *,
    rate: float,
    seconds: float | None,
    batch: int = 100,
    concurrency: int = 16,
    topic: str = DEFAULT_TOPIC,
    stop: asyncio.Event | None = None,
) -> SendStats:
    """QoS 1 publishes; a batch of one is sent as the bare event object."""
    stats = SendStats()
    target = topic.format(tenant=tenant)
    async with mqtt_client(url, max_queued_outgoing_messages=concurrency * 4) as client:

        async def ship(events: list[dict[str, Any]]) -> None:
            body: Any = events[0] if len(events) == 1 else events
            payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            await client.publish(target, payload, qos=1)
            stats.batches += 1
            stats.sent += len(events)

        return await pace(
            sim,
            ship,
            stats,
            rate=rate,
            seconds=seconds,
            batch=batch,
            concurrency=concurrency,
            stop=stop,
        )
