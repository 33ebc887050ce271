"""Several ingest workers on one stream (MQTT shared subscriptions): batches for the same
meters committed concurrently lose no update and alert once per episode."""

from __future__ import annotations

import multiprocessing
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from meterline.runtime import Runtime
from meterline.services.meter_events import ingest_events
from meterline.store.models import Message, Meter, MeterAlert, MeterState, MeterUsage
from tests.support.meter_fleet import add_meter, balances_by_serial, make_fleet


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
        balances = balances_by_serial(s, "C-%")
        assert balances == {f"C-{i}": 500_00 - 59 * 8_00 for i in range(20)}
        # Older arrivals are ignored, so the applied balance only ever falls: whatever the
        # interleaving, one episode and one message per meter.
        per_meter = dict(
            s.execute(select(MeterAlert.meter_id, func.count()).group_by(MeterAlert.meter_id)).all()
        )
        assert set(per_meter.values()) == {1}
        assert s.scalar(select(func.count()).select_from(Message)) == 20


# --- several processes on one database --------------------------------------------------

TAMPERS = ("COVER_OPEN", "MAGNET", "NEUTRAL_MISSING")


def _order_free_stream(meters: int, now: datetime) -> list[dict[str, object]]:
    """Events whose outcome does not depend on the order batches commit in: balances only
    fall (one low-balance episode each, whichever arrives first), tamper codes only appear
    (each alerts once), readings and demand only feed maxima and minima."""
    start = now - timedelta(minutes=60)
    events: list[dict[str, object]] = []
    for i in range(meters):
        for k in range(40):
            at = (start + timedelta(minutes=k)).isoformat()
            events.append(
                {"type": "balance", "meter": f"C-{i}", "at": at, "balance": 400_00 - k * 9_00}
            )
            events.append({"type": "demand", "meter": f"C-{i}", "at": at, "kw": f"{1 + k % 3}.5"})
            if k % 4 == 0:
                reading = {"type": "reading", "meter": f"C-{i}", "at": at, "unit": "kWh"}
                events.append({**reading, "value": f"{1000 + k}.25"})
            if k % 13 == 5:
                code = TAMPERS[(i + k) % len(TAMPERS)]
                tamper = {"type": "tamper", "meter": f"C-{i}", "at": at, "code": code}
                events.append({**tamper, "text": code, "active": True})
    return events


def _ingest_in_process(
    url: str, batches: list[list[dict[str, object]]], now: datetime, go: Any
) -> None:
    """A separate process's share of the stream (spawned: its own engine and locks)."""
    from meterline.runtime import open_runtime

    rt = open_runtime(database_url=url)
    try:
        go.wait(30)
        for batch in batches:
            ingest_events(rt, "jaipur", batch, source="mqtt", now=now)
    finally:
        rt.close()


def _outcome(runtime: Runtime) -> dict[str, object]:
    with runtime.sessions() as s:
        states = sorted(
            s.execute(
                select(
                    Meter.serial,
                    MeterState.balance_minor,
                    MeterState.balance_at,
                    MeterState.low_alerted_minor,
                    MeterState.reading_value,
                    MeterState.demand_kw,
                    MeterState.tamper,
                    MeterState.last_seen,
                ).join(MeterState, MeterState.meter_id == Meter.id)
            ).all()
        )
        # Not the episode keys: they name the event that crossed first, which depends on
        # arrival order (the same in any one interleaving, not across interleavings).
        alerts = sorted(
            s.execute(
                select(Meter.serial, MeterAlert.kind, MeterAlert.subject, MeterAlert.closed_at)
                .join(Meter, Meter.id == MeterAlert.meter_id)
            ).all()
        )  # fmt: skip
        usage = sorted(
            s.execute(
                select(
                    MeterUsage.meter_id,
                    MeterUsage.period,
                    MeterUsage.start,
                    MeterUsage.reading_min,
                    MeterUsage.reading_max,
                    MeterUsage.max_demand_kw,
                )
            ).all()
        )
        messages = sorted(
            (kind, serial)
            for kind, serial in s.execute(
                select(Message.kind, Meter.serial).join(
                    Meter, Meter.account_id == Message.account_id
                )
            )
        )
    return {"states": states, "alerts": alerts, "usage": usage, "messages": messages}


def _fleet_of(runtime: Runtime, meters: int) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        for i in range(meters):
            add_meter(s, fleet.tenant_id, serial=f"C-{i}", account=f"C-AC-{i}", name=f"c{i}",
                      language="en", phone=f"+9198100000{i:02d}")  # fmt: skip


def test_two_processes_on_interleaved_batches_end_as_one_process_does(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    """Two OS processes (each its own engine: on SQLite they queue on the lock file, on
    PostgreSQL on the state rows) take alternate batches of one stream at once, and the
    database ends with the states, usage, alert episodes and messages that one process
    ingesting the whole stream in order leaves."""
    meters = 12
    now = datetime.now(UTC)
    events = _order_free_stream(meters, now)
    random.Random(11).shuffle(events)
    batches = [events[k : k + 40] for k in range(0, len(events), 40)]

    # One process, in order, into a second database of the same backend.
    if database_url.startswith("sqlite"):
        alone_url = f"sqlite:///{tmp_path / 'alone.db'}"
        from meterline.store.db import make_engine
        from meterline.store.migrate import upgrade_engine

        engine = make_engine(alone_url)
        upgrade_engine(engine)
        engine.dispose()
    else:
        alone_url = database_url  # PostgreSQL: the same schema, compared before and after
    _fleet_of(runtime, meters)
    alone = Runtime(runtime.settings, *_engine_and_sessions(alone_url))
    try:
        if alone_url != database_url:
            _fleet_of(alone, meters)
        for batch in batches:
            ingest_events(alone, "jaipur", batch, source="mqtt", now=now)
        expected = _outcome(alone)
    finally:
        alone.close()
    if alone_url == database_url:  # start the concurrent run from the same empty states
        _reset_events(runtime)

    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [
        ctx.Process(target=_ingest_in_process, args=(database_url, batches[n::2], now, go))
        for n in range(2)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    got = _outcome(runtime)
    assert got["states"] == expected["states"]
    assert got["usage"] == expected["usage"]
    assert got["alerts"] == expected["alerts"]
    assert got["messages"] == expected["messages"]
    # One low-balance episode per meter, and each tamper code once.
    assert len(expected["messages"]) >= meters  # type: ignore[arg-type]


def _engine_and_sessions(url: str) -> tuple[Any, Any]:
    from meterline.store.db import make_engine, make_session_factory

    engine = make_engine(url)
    return engine, make_session_factory(engine)


def _reset_events(runtime: Runtime) -> None:
    from sqlalchemy import delete

    from meterline.store.models import MeterEventBatch

    with runtime.sessions() as s, s.begin():
        s.execute(delete(MeterAlert))
        s.execute(delete(MeterUsage))
        s.execute(delete(MeterState))
        s.execute(delete(MeterEventBatch))
        s.execute(delete(Message))
