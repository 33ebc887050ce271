"""A batch's alert messages are queued together (one `notify_many`): each episode row
points at its own message, redelivery queues nothing new, and when the credit cannot
cover them all, those it covers still go and the others say why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.meter_events import ingest_events
from meterline.store.models import Message, Meter, MeterAlert, MeterState, Tenant
from tests.support.meter_fleet import add_meter, make_fleet

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata: outside quiet hours
AT = (NOW - timedelta(minutes=10)).isoformat()


def _tampers(serials: list[str]) -> list[dict[str, object]]:
    return [{"type": "tamper", "meter": sn, "at": AT, "code": "magnet"} for sn in serials]


def test_a_batch_of_alerts_queues_one_message_each_and_redelivery_none(
    runtime: Runtime,
) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        for i in range(20):
            add_meter(
                s,
                fleet.tenant_id,
                serial=f"B-{i}",
                account=f"AB-{i}",
                name=f"Consumer {i}",
                language="en" if i % 2 else "hi",
                phone=f"+9198100000{i:02d}",
            )
        before = credit.totals(s, fleet.tenant_id).held_minor
    serials = [f"B-{i}" for i in range(20)]
    events = [
        *_tampers(serials),
        {"type": "balance", "meter": "SN-1", "at": AT, "balance": 0},
        {"type": "tamper", "meter": "NOPE", "at": AT, "code": "magnet"},
    ]
    report = ingest_events(runtime, "jaipur", events, source="test", now=NOW)
    # 20 tampers; zero balance opens zero (messaged) and low (silently).
    assert (report.alerts, report.messages, report.unknown_meters) == (22, 21, 1)
    with runtime.sessions() as s:
        rows = s.execute(
            select(MeterAlert.subject, MeterAlert.message_id, Meter.id, Meter.serial).join(
                Meter, Meter.id == MeterAlert.meter_id
            )
        ).all()
        messages = {m.id: m for m in s.scalars(select(Message))}
        held = credit.totals(s, fleet.tenant_id).held_minor
    assert len(messages) == 21
    for subject, message_id, meter_id, serial in rows:
        if subject == "low_balance":
            assert message_id is None
            continue
        message = messages[message_id]  # each episode points at its own message
        assert message.idempotency_key.startswith(f"meter:{meter_id}:{subject}:open:")
        assert message.kind == ("tamper" if subject.startswith("tamper") else "zero_balance")
        if subject.startswith("tamper"):
            assert serial in message.body
    assert held - before == sum(m.cost_minor for m in messages.values()) > 0

    again = ingest_events(runtime, "jaipur", events, source="test", now=NOW)
    assert (again.alerts, again.messages, again.duplicates) == (0, 0, 21)
    with runtime.sessions() as s:
        assert len(s.scalars(select(Message.id)).all()) == 21
        assert credit.totals(s, fleet.tenant_id).held_minor == held


def test_when_the_credit_covers_only_some_those_go_and_the_rest_say_why(
    runtime: Runtime,
) -> None:
    with runtime.sessions() as s, s.begin():
        fleet = make_fleet(s)
        tenant = s.get(Tenant, fleet.tenant_id)
        assert tenant is not None
        # Leave 20 paisa: one single-part English SMS, not a Hindi (UCS-2) one.
        left = credit.totals(s, fleet.tenant_id).available_minor
        credit.hold(s, tenant, left - 20, messages=0, note="test: spend the credit")
    report = ingest_events(runtime, "jaipur", _tampers(["SN-1", "SN-2"]), source="test", now=NOW)
    assert (report.alerts, report.messages) == (2, 1)
    with runtime.sessions() as s:
        alerts = {
            serial: (message_id, note)
            for serial, message_id, note in s.execute(
                select(Meter.serial, MeterAlert.message_id, MeterAlert.note).join(
                    Meter, Meter.id == MeterAlert.meter_id
                )
            )
        }
        sent = s.scalars(select(Message)).all()
        states = {
            sn: tamper
            for sn, tamper in s.execute(
                select(Meter.serial, MeterState.tamper).join(
                    MeterState, MeterState.meter_id == Meter.id
                )
            )
        }
        assert credit.totals(s, fleet.tenant_id).available_minor == 0
    assert [m.to_address for m in sent] == ["+919812345679"]  # SN-2, Anita, English
    assert alerts["SN-2"] == (sent[0].id, None)
    message_id, note = alerts["SN-1"]
    assert message_id is None and note is not None and "not enough messaging credit" in note
    assert set(states) == {"SN-1", "SN-2"}  # both states committed
    assert all(t is not None and "magnet" in t for t in states.values())
