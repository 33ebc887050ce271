"""MQTT ingest: meter events from a broker into the events service, in batches.

One worker subscribes with QoS 1 to `$share/{group}/meterline/+/events` (an MQTT 5 shared
subscription): the broker hands each message to one member of the group, so several
`meterline ingest --mqtt` processes split one stream. The tenant is the `+` level of
the topic (or a fixed `tenant` for a topic without one).

Messages are gathered into a batch (up to `batch_events` events or `window_s` after the
first one) and handed to the events service in one call per tenant; only then are they
acknowledged (manual PUBACK), so a worker that dies with a batch in hand leaves those
messages with the broker, which delivers them again. Duplicates are harmless: the events
service drops an event it has seen (by id) and never lets an older balance win.

A payload that is not JSON (or an NDJSON line that is not) is counted and logged with
its reason; the rest of the stream goes on. When the broker goes away the worker
reconnects with backoff, resuming its session. SIGTERM (the `stop` event) flushes the
batch in hand, acknowledges it and disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from meterline.ingest.sim_send import mqtt_client

log = structlog.get_logger("meterline.ingest.mqtt")

DEFAULT_TOPIC = "meterline/+/events"


@dataclass(frozen=True)
class HandleResult:
    """What the events service made of one tenant's batch."""

    accepted: int
    rejected: int
    reasons: list[str] = field(default_factory=list)


class PermanentFailure(Exception):
    """The batch can never be taken (unknown tenant, ...): count it, acknowledge, go on."""


# (tenant slug, raw event objects) -> result. Runs in a worker thread (it does DB work).
Handler = Callable[[str, list[Any]], HandleResult]


def takes_event_texts(handler: Handler) -> Handler:
    """Mark a handler that also takes an event as its JSON text (bytes), as the events
    service does: the worker then hands over such texts undecoded (`payload_events`);
    other handlers get decoded objects (`parse_payload`)."""
    handler.event_texts = True  # type: ignore[attr-defined]
    return handler


@dataclass
class IngestSettings:
    url: str
    topic: str = DEFAULT_TOPIC
    group: str | None = "meterline"  # None: a plain (unshared) subscription
    tenant: str | None = None  # for a topic without a `+` level
    batch_events: int = 5000
    window_s: float = 0.2
    client_id: str | None = None
    # How long the broker keeps the session (our unacknowledged messages, and our share of
    # the stream meanwhile) after a disconnect. None: an hour with a stable `client_id`
    # (a restarted worker resumes it), 0 without one (nobody could resume it).
    session_expiry_s: int | None = None
    reconnect_max_s: float = 10.0
    max_inflight: int = 1000
    receive_maximum: int = 10_000


@dataclass
class IngestCounters:
    messages: int = 0
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    bad_payloads: int = 0  # messages (or NDJSON lines) that are not JSON
    failed_batches: int = 0  # handler raised: retried, or dropped if permanent
    batches: int = 0
    connects: int = 0
    samples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.samples) < 50:
            self.samples.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


_check_json = msgspec.json.Decoder(msgspec.Raw).decode  # syntax only: builds no objects
_NOT_JSON = (msgspec.DecodeError, msgspec.ValidationError)


def _one_object(text: str) -> bool:
    """Whether `text` is exactly one JSON object (msgspec's check, in C)."""
    if text.lstrip()[:1] != "{":
        return False
    try:
        _check_json(text)
    except _NOT_JSON:
        return False
    return True


def payload_events(payload: bytes) -> tuple[list[Any], list[str]]:
    """`parse_payload` for the worker: an event that is one JSON object stays its text
    (as bytes, which no JSON value decodes to), which the events service decodes straight
    into its event (its msgspec fast path) instead of a dict checked field by field.
    Everything else, and every reason, is `parse_payload`'s."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"payload is not UTF-8 ({exc.reason} at byte {exc.start})"]
    if not text.strip():
        return [], ["payload is empty"]
    if _one_object(text):
        return [payload], []
    try:
        body = json.loads(text)
    except ValueError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            return [], [f"payload is not JSON: {exc}"]
        items: list[Any] = []
        problems: list[str] = []
        for no, line in enumerate(lines, 1):
            if _one_object(line):
                items.append(line.encode())
                continue
            try:
                items.append(json.loads(line))
            except ValueError as line_exc:
                problems.append(f"NDJSON line {no} is not JSON: {line_exc}")
        return items, problems
    if isinstance(body, list):
        return body, []
    if isinstance(body, dict):
        return [body], []
    return [], [f"payload is JSON but not an event object or a list ({type(body).__name__})"]


def parse_payload(payload: bytes) -> tuple[list[Any], list[str]]:
    """One event object, a JSON array of them, or NDJSON -> (items, problems)."""
    items, problems = payload_events(payload)
    return [json.loads(i) if isinstance(i, bytes) else i for i in items], problems


def tenant_of(topic: str, topic_filter: str, fixed: str | None) -> str | None:
    """The `+` level of `topic_filter` in `topic` (e.g. meterline/{tenant}/events)."""
    if fixed:
        return fixed
    parts, pattern = topic.split("/"), topic_filter.split("/")
    for level, want in zip(parts, pattern, strict=False):
        if want == "+":
            return level or None
    return None


def subscription(settings: IngestSettings) -> str:
    return f"$share/{settings.group}/{settings.topic}" if settings.group else settings.topic


class MqttIngestWorker:
    def __init__(self, settings: IngestSettings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self._read = payload_events if getattr(handler, "event_texts", False) else parse_payload
        self.counters = IngestCounters()
        self.connected = asyncio.Event()  # set while subscribed (tests wait on it)
        self._batch: dict[str, list[Any]] = {}
        self._batch_events = 0
        self._unacked: list[tuple[int, int]] = []  # (mid, qos) of messages in the batch
        self._storing: asyncio.Future[None] | None = None
        self._first_at: float | None = None

    def _client_id(self) -> str:
        return self.settings.client_id or f"meterline-ingest-{socket.gethostname()}-{os.getpid()}"

    async def run(self, stop: asyncio.Event) -> IngestCounters:
        """Consume until `stop` is set; reconnects whenever the broker goes away."""
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        expiry = self.settings.session_expiry_s
        if expiry is None:
            expiry = 3600 if self.settings.client_id else 0
        props.SessionExpiryInterval = expiry
        # How many unacknowledged messages the broker may send: batches are acknowledged
        # whole once stored, so this bounds how many messages one batch can gather.
        props.ReceiveMaximum = self.settings.receive_maximum
        client = mqtt_client(
            self.settings.url,
            self._client_id(),
            properties=props,
            max_inflight_messages=self.settings.max_inflight,
            # Always resume the session: after a lost connection, and after a restart with
            # the same client id, the broker hands over what was not acknowledged. (paho's
            # "first connect only" counts every connect() call as a first one.)
            clean_start=False,
        )
        # Acknowledge only once a batch is stored (paho's manual ack; aiomqtt keeps the
        # paho client it wraps as `_client`).
        client._client.manual_ack_set(True)
        delay = 0.5
        while not stop.is_set():
            try:
                async with client:
                    self.counters.connects += 1
                    await client.subscribe(subscription(self.settings), qos=1)
                    log.info(
                        "subscribed", topic=subscription(self.settings), client_id=client.identifier
                    )
                    self.connected.set()
                    delay = 0.5
                    await self._consume(client, stop)
                    await self._flush(client)
                    await self._drain()  # stored and acknowledged before we disconnect
                    return self.counters
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                # Store what we hold; the broker redelivers the unacknowledged messages.
                await self._flush(None)
                await self._drain()
                if stop.is_set():
                    break
                log.warning("MQTT connection lost; reconnecting", error=str(exc), delay_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.settings.reconnect_max_s)
        self.connected.clear()
        return self.counters

    async def _consume(self, client: Any, stop: asyncio.Event) -> None:
        messages = aiter(client.messages)
        stopper = asyncio.ensure_future(stop.wait())
        # One read stays pending across window timeouts: cancelling a read that has just
        # taken a message off aiomqtt's queue would drop that message.
        getter: asyncio.Future[Any] | None = None
        try:
            while not stop.is_set():
                timeout = None
                if self._first_at is not None:
                    timeout = max(0.0, self._first_at + self.settings.window_s - time.monotonic())
                if getter is None:
                    getter = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    message, getter = getter.result(), None
                    self._take(message)
                if self._batch_events >= self.settings.batch_events or (
                    self._first_at is not None
                    and time.monotonic() - self._first_at >= self.settings.window_s
                ):
                    await self._flush(client)
            # Stopping: whatever the pending read got still belongs to this batch.
            if (
                getter is not None
                and getter.done()
                and not getter.cancelled()
                and getter.exception() is None
            ):
                self._take(getter.result())
                getter = None
        finally:
            stopper.cancel()
            if getter is not None:
                getter.cancel()

    def _take(self, message: Any) -> None:
        c = self.counters
        c.messages += 1
        self._unacked.append((message.mid, message.qos))
        if self._first_at is None:
            self._first_at = time.monotonic()
        topic = str(message.topic)
        tenant = tenant_of(topic, self.settings.topic, self.settings.tenant)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if isinstance(message.payload, str):
            payload = message.payload.encode()
        if tenant is None:
            c.bad_payloads += 1
            self._bad(topic, "no tenant in the topic")
            return
        items, problems = self._read(payload)
        for reason in problems:
            c.bad_payloads += 1
            self._bad(topic, reason)
        if items:
            self._batch.setdefault(tenant, []).extend(items)
            self._batch_events += len(items)
            c.events += len(items)

    def _bad(self, topic: str, reason: str) -> None:
        text = f"{topic}: {reason}"
        self.counters.note(text)
        log.warning("bad MQTT payload", detail=text)

    async def _flush(self, client: Any | None) -> None:
        """Start storing the batch in hand. One batch is stored while the next gathers (the
        database work runs in a thread, reading and parsing in the event loop); a new
        store waits for the previous one, so batches are stored and acknowledged in order."""
        batch, self._batch = self._batch, {}
        self._batch_events, self._first_at = 0, None
        unacked, self._unacked = self._unacked, []
        await self._drain()
        if batch or unacked:
            self._storing = asyncio.ensure_future(self._store(client, batch, unacked))

    async def _drain(self) -> None:
        """Wait for the batch being stored (and acknowledged) to be done."""
        if self._storing is not None:
            storing, self._storing = self._storing, None
            await storing

    async def _store(
        self, client: Any | None, batch: dict[str, list[Any]], unacked: list[tuple[int, int]]
    ) -> None:
        """Hand a batch to the service, then acknowledge its messages."""
        c = self.counters
        for tenant, items in batch.items():
            while True:
                try:
                    result = await asyncio.to_thread(self.handler, tenant, items)
                except PermanentFailure as exc:
                    c.failed_batches += 1
                    c.rejected += len(items)
                    c.note(f"{tenant}: {exc}")
                    log.warning("batch refused", tenant=tenant, events=len(items), reason=str(exc))
                    break
                except Exception:
                    # The database is down or busy: keep the batch and try again.
                    c.failed_batches += 1
                    log.exception("storing a batch failed", tenant=tenant, events=len(items))
                    await asyncio.sleep(1.0)
                    continue
                c.batches += 1
                c.accepted += result.accepted
                c.rejected += result.rejected
                for reason in result.reasons[:3]:
                    c.note(f"{tenant}: {reason}")
                break
        if client is not None:
            for mid, qos in unacked:
                if qos > 0:
                    client._client.ack(mid, qos)
