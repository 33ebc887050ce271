"""Several ingest workers on one stream (MQTT shared subscriptions): batches for the same
meters committed concurrently lose no update and alert once per episode."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.models import Message, Meter, MeterAlert, MeterState
from tests.support.meter_fleet import add_meter, make_fleet


def test_concurrent_batches_for_the_same_meters_keep_the_newest_and_alert_once(
    runtime: Runtime,
) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        for i in range(20):
            add_meter(s, fleet.tenant_id, serial=f"C-{i}", account=f"C-AC-{i}", name=f"c{i}",
                      language="en", phone=f"+9198100000{i:02d}")  # fmt: skip
    now = datetime.now(UTC)
    start = now - timedelta(minutes=60)
    # Each meter's balance falls from 500 to 28 over 60 one-minute steps: one low-balance
    # episode (below 100), never zero.
    events = [
        {
            "type": "balance",
            "meter": f"C-{i}",
            "at": (start + timedelta(minutes=k)).isoformat(),
            "balance": 500_00 - k * 8_00,
        }
        for i in range(20)
        for k in range(60)
    ]
    rng = random.Random(7)
    rng.shuffle(events)
    chunks = [events[n::4] for n in range(4)]  # four workers, interleaved arrival
    errors: list[BaseException] = []

    def worker(chunk: list[dict[str, object]]) -> None:
        try:
            for k in range(0, len(chunk), 25):
                ingest_events(runtime, "jaipur", chunk[k : k + 25], source="mqtt", now=now)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with runtime.sessions() as s:
        balances = dict(
            s.execute(
                select(Meter.serial, MeterState.balance_minor)
                .join(MeterState, MeterState.meter_id == Meter.id)
                .where(Meter.serial.like("C-%"))
            ).all()
        )
        assert balances == {f"C-{i}": 500_00 - 59 * 8_00 for i in range(20)}
        # Older arrivals are ignored, so the applied balance only ever falls: whatever the
        # interleaving, one episode and one message per meter.
        per_meter = dict(
            s.execute(select(MeterAlert.meter_id, func.count()).group_by(MeterAlert.meter_id)).all()
        )
        assert set(per_meter.values()) == {1}
        assert s.scalar(select(func.count()).select_from(Message)) == 20
