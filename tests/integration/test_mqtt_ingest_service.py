"""MQTT into the events service, end to end: Mosquitto, the worker (in-process and as
`meterline ingest`), the database's meter states and alerts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from meterline.ingest.events_handler import service_handler
from meterline.ingest.mqtt import IngestSettings, MqttIngestWorker
from meterline.ingest.sim_send import mqtt_client
from meterline.runtime import Runtime
from meterline.store.models import Message, Meter, MeterAlert, MeterState, MeterUnknownSerial
from tests.conftest import MQTT_URL
from tests.support.meter_fleet import make_fleet

pytestmark = pytest.mark.skipif(not MQTT_URL, reason="set METERLINE_TEST_MQTT_URL")


def _at(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


async def _publish(topic: str, payloads: list[bytes]) -> None:
    assert MQTT_URL
    async with mqtt_client(MQTT_URL, f"pub-{uuid.uuid4().hex[:8]}") as client:
        for p in payloads:
            await client.publish(topic, p, qos=1)


def _stream() -> list[bytes]:
    return [
        json.dumps({"type": "balance", "meter": "SN-1", "at": _at(5), "balance": 500_00}).encode(),
        json.dumps(  # an array: the balance falls below 100 INR, then a tamper code
            [
                {"type": "balance", "meter": "SN-1", "at": _at(2), "balance": 40_00, "id": "b2"},
                {
                    "type": "tamper",
                    "meter": "SN-2",
                    "at": _at(1),
                    "code": "magnet",
                    "text": "Magnet",
                    "active": True,
                },
            ]
        ).encode(),
        b"<xml>not json</xml>",
        json.dumps({"type": "balance", "meter": "NOPE-9", "at": _at(1), "balance": 1}).encode(),
        json.dumps({"type": "demand", "meter": "SN-2", "at": _at(1), "kw": "-1"}).encode(),
    ]


def _check_database(runtime: Runtime, tenant_id: int) -> None:
    with runtime.reader() as s:
        states = {
            serial: state
            for serial, state in s.execute(
                select(Meter.serial, MeterState)
                .join(MeterState, MeterState.meter_id == Meter.id)
                .where(Meter.tenant_id == tenant_id)
            )
        }
        assert states["SN-1"].balance_minor == 40_00
        assert states["SN-2"].tamper and "magnet" in json.dumps(states["SN-2"].tamper)
        kinds = sorted(
            s.scalars(select(MeterAlert.kind).where(MeterAlert.tenant_id == tenant_id)).all()
        )
        assert kinds == ["low_balance", "tamper"]
        assert s.scalar(select(func.count()).select_from(Message)) == 2  # one to each consumer
        unknown = s.scalars(
            select(MeterUnknownSerial.serial).where(MeterUnknownSerial.tenant_id == tenant_id)
        ).all()
        assert unknown == ["NOPE-9"]


def test_worker_stores_states_and_alerts_and_counts_what_it_cannot_take(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
    root = f"mlt{uuid.uuid4().hex[:10]}"

    async def scenario() -> MqttIngestWorker:
        assert MQTT_URL
        worker = MqttIngestWorker(
            IngestSettings(url=MQTT_URL, topic=f"{root}/+/events", group=None, window_s=0.05),
            service_handler(runtime),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(worker.connected.wait(), 10)
        await _publish(f"{root}/jaipur/events", _stream())
        await _publish(f"{root}/no-such-utility/events", [_stream()[0]])
        deadline = time.monotonic() + 20
        while (
            worker.counters.messages < 6
            or worker.counters.batches + worker.counters.failed_batches < 2
        ):
            assert time.monotonic() < deadline, worker.counters
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stop.set()
        await task
        return worker

    worker = asyncio.run(scenario())
    c = worker.counters
    assert c.messages == 6 and c.bad_payloads == 1
    assert c.accepted == 3  # two balances and the tamper
    assert c.rejected == 3  # the negative demand, the unknown meter, the unknown tenant's event
    text = "\n".join(c.samples)
    assert "payload is not JSON" in text and "NOPE-9" in text and "no-such-utility" in text
    _check_database(runtime, fleet.tenant_id)


def test_meterline_ingest_process_stops_cleanly_on_sigterm(runtime: Runtime) -> None:
    assert MQTT_URL
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
    root = f"mlt{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "METERLINE_DATABASE_URL": runtime.settings.database_url,
        "METERLINE_LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "ingest", "--mqtt", MQTT_URL,
         "--topic", f"{root}/+/events", "--group", f"g{root}", "--window", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        # Wait until the worker has subscribed (it logs the subscription).
        seen = ""
        assert proc.stderr is not None
        while "subscribed" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen
            seen += proc.stderr.readline()
        asyncio.run(_publish(f"{root}/jaipur/events", _stream()))
        # Read-only sessions: a write session would hold SQLite's write lock while it polls.
        while True:
            with runtime.reader() as s:
                if s.scalar(select(func.count()).select_from(MeterAlert)) == 2:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    counters = json.loads(err.strip().splitlines()[-1])
    assert counters["messages"] == 5 and counters["bad_payloads"] == 1
    assert counters["accepted"] == 3 and counters["rejected"] == 2
    _check_database(runtime, fleet.tenant_id)
