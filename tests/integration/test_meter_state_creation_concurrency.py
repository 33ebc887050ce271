"""State rows created while other batches lock existing ones: workers whose batches mix
meters that have a state with meters reporting for the first time (while more meters are
being added to the fleet) all succeed, with no deadlock, and end with one state per meter
holding its newest event."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.models import Meter, MeterState
from tests.support.meter_fleet import add_meter, make_fleet

METERS = 90
WORKERS = 4


def _add_meters(runtime: Runtime, tenant_id: int, serials: list[str]) -> None:
    with runtime.sessions() as s, s.begin():
        for serial in serials:
            add_meter(s, tenant_id, serial=serial, account=f"A-{serial}", name=serial,
                      language="en", phone=None)  # fmt: skip


def test_new_and_known_meters_in_concurrent_batches(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        tenant_id = make_fleet(s).tenant_id
    serials = [f"N-{i:03d}" for i in range(METERS)]
    _add_meters(runtime, tenant_id, serials[:30])
    now = datetime.now(UTC)
    start = now - timedelta(minutes=50)
    newest: dict[str, datetime] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    go = threading.Barrier(WORKERS + 1)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            go.wait(30)
            for _ in range(40):
                batch = []
                for serial in rng.sample(serials, 25):  # some not in the fleet yet
                    at = start + timedelta(seconds=rng.randrange(3000))
                    batch.append({"type": "power", "meter": serial, "at": at.isoformat(),
                                  "state": "on"})  # fmt: skip
                report = ingest_events(runtime, "jaipur", batch, source="test", now=now)
                assert report.rejected == 0, report.errors
                with lock:  # what each meter that was in the fleet must end with
                    known = set(serials) - set(report.unknown_serials)
                    for event in batch:
                        at = datetime.fromisoformat(str(event["at"]))
                        serial = str(event["meter"])
                        if serial in known and (serial not in newest or at > newest[serial]):
                            newest[serial] = at
        except BaseException as exc:  # reported below
            errors.append(exc)

    def grow() -> None:
        go.wait(30)
        for k in range(30, METERS, 10):
            _add_meters(runtime, tenant_id, serials[k : k + 10])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    threads.append(threading.Thread(target=grow))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with runtime.sessions() as s:
        seen = dict(
            s.execute(
                select(Meter.serial, MeterState.last_seen).join(
                    MeterState, MeterState.meter_id == Meter.id
                )
            ).all()
        )
    assert seen == newest
